"""A search's life cycle: warm starts (queued parameter sets, finished runs brought in), and budgets that end it."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from conftest import SEARCH, SMOKE, journal, load_study, main, metrics, run_dirs

State = optuna.trial.TrialState
SMALL = (*SMOKE, *SEARCH, "data.num_train=600", "data.val_size=200", "hydra/sweeper/pruner=none")
FIXED = ("optimizer=sgd", "optimizer.weight_decay=0.0001", "model.conv2_channels=16", "model.fc1_features=120")


@pytest.mark.slow  # two searches: in the full suite
def test_queued_parameters_are_the_first_trials_once_however_often_the_search_starts(tmp_path, capsys):
    queued = "hydra.sweeper.enqueue=[{optimizer:sgd,optimizer.lr:0.001,data.batch_size:64}]"
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=1", queued, tmp=tmp_path) == 0
    assert "(hydra.sweeper.enqueue): tried before the sampler's trials" in capsys.readouterr().out
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=2", queued, tmp=tmp_path) == 0  # started again
    trials = load_study(journal(tmp_path)).trials
    assert len(trials) == 2 and all(t.state == State.COMPLETE for t in trials)
    first = trials[0].params
    assert (first["optimizer"], first["optimizer.lr"], first["data.batch_size"]) == ("sgd", 0.001, 64)
    same = [t for t in trials if t.params["optimizer.lr"] == 0.001 and t.params["optimizer"] == "sgd"]
    assert len(same) == 1  # not queued again


def test_a_queued_set_outside_the_search_space_is_one_clear_error(tmp_path, capsys):
    bad = "hydra.sweeper.enqueue=[{optimizer.lr:5.0}]"
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=1", bad, tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert "hydra.sweeper.enqueue[0]: optimizer.lr=5.0 is outside its search space" in err and "Traceback" not in err
    unknown = "hydra.sweeper.enqueue=[{optimizer.momentum:0.9}]"
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=1", unknown, tmp=tmp_path) == 2
    assert "sets optimizer.momentum, which the search does not search" in capsys.readouterr().err


@pytest.mark.slow  # a grid and two searches
def test_the_finished_runs_of_a_grid_become_trials_of_a_study_once(tmp_path, capsys):
    grid = tmp_path / "grid"
    assert (
        main(
            "-m",
            *SMOKE,
            *FIXED,
            "data.batch_size=64",
            "optimizer.lr=0.01,0.001",
            f"hydra.sweep.dir={grid}",
            "data.num_train=600",
            "data.val_size=200",
            tmp=tmp_path,
        )
        == 0
    )
    values = {metrics(r)["hparams"]["optimizer.lr"]: metrics(r)["objective"]["value"] for r in run_dirs(grid)}
    warm = f"hydra.sweeper.warm_start_from=[{grid}]"
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=1", warm, tmp=tmp_path) == 0
    assert "warm start: 2 finished runs added to the study as trials" in capsys.readouterr().out
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=1", warm, tmp=tmp_path) == 0  # not added again
    trials = load_study(journal(tmp_path)).trials
    imported = [t for t in trials if "imported_from" in t.user_attrs]
    assert {t.params["optimizer.lr"]: t.value for t in imported} == values
    assert len(trials) == 3  # the 2 runs, and the 1 trial n_trials asked for: imported runs do not count


@pytest.mark.slow  # a search (the rules themselves: test_search_rules.py)
def test_a_budget_ends_the_search_with_its_reason_and_exit_status_0(tmp_path, capsys):
    assert main("-m", *SMALL, "hydra.sweeper.n_trials=50", "hydra.sweeper.target=0.0", tmp=tmp_path) == 0
    out = capsys.readouterr().out
    stop = next(line for line in out.splitlines() if "the search stops: " in line)
    assert "reached the target (hydra.sweeper.target=0)" in stop and "no more trials start" in stop
    trials = load_study(journal(tmp_path)).trials
    assert [t.state for t in trials] == [State.COMPLETE]  # the first completed trial is at least 0


def test_importance_of_a_pruned_search_comes_from_the_deepest_epoch_all_trials_reached(tmp_path):
    from fashionlab.leaderboard.importance import importance
    from fashionlab.leaderboard.table import leaderboard
    from fashionlab.runs import load_runs

    for n in range(10):  # the learning rate decides; batch size is noise; only 2 trials completed
        lr, batch = 10 ** -(1 + n % 5), (64, 128)[n % 2]
        value = 0.9 - 0.1 * (n % 5) + 0.001 * (n % 3)
        status = "completed" if n < 2 else "pruned"
        curve = {"1": value, "2": value + 0.01} if status == "completed" else {"1": value}
        folder = tmp_path / f"{n:03d}"
        folder.mkdir()
        run = {
            "status": status,
            "objective": {"metric": "val/acc", "mode": "max", "value": curve["1"], "curve": curve},
            "epochs": len(curve),
            "max_epochs": 2,
            "wall_time_s": 1.0,
            "trial": n,
            "job": {"num": n},
            "hparams": {"optimizer.lr": lr, "data.batch_size": batch},
        }
        (folder / "metrics.json").write_text(json.dumps(run))
    runs = load_runs(tmp_path)
    scores, source, data = importance(runs)
    assert source.startswith("val/acc at epoch 1, the deepest epoch all 10 runs reached") and len(data) == 10
    for name in ("fANOVA", "PED-ANOVA"):
        assert max(scores[name], key=scores[name].get) == "optimizer.lr"
    assert "importance (fANOVA / PED-ANOVA), from val/acc at epoch 1" in leaderboard(runs)


@pytest.mark.slow  # six trials
def test_a_two_objective_search_ends_with_a_front_that_the_leaderboard_and_results_agree_on(tmp_path):
    from fashionlab.runs import load_runs, pareto_front

    args = ("hparams_search=lenet5_pareto", "data.num_train=600", "data.val_size=200", "trainer.max_epochs=2")
    assert main("-m", *SMOKE, *args, "hydra.sweeper.n_trials=5", tmp=tmp_path) == 0  # successive halving
    folder = tmp_path / "multirun" / "lenet5_pareto"
    study = load_study(folder / "optuna.journal", "lenet5_pareto")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = sorted(t.number for t in study.best_trials)
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["objectives"] == ["val/acc", "model/params"]
    assert sorted(s["trial"] for s in results["solutions"]) == front
    runs = [r for r in load_runs(folder) if r.get("trial") is not None]
    assert sorted(r["trial"] for r in pareto_front(runs)) == front
    for r in runs:  # every run records its parameter count; the completed ones both objectives, as told
        assert r["model/params"] > 0
        if r["status"] == "completed":
            told = study.trials[r["trial"]].values
            assert [o["value"] for o in r["objective"]["objectives"]] == told and told[1] == r["model/params"]
    board = (folder / "leaderboard.txt").read_text().splitlines()
    marked = sorted(int(line.split()[2]) for line in board[2:] if line.split()[1:2] == ["*"])
    assert marked == front


def test_a_multi_objective_search_refuses_what_needs_one_best_trial(tmp_path, capsys):
    args = ("hparams_search=lenet5_pareto", "hydra.sweeper.n_trials=1", "hydra.sweeper.patience=2")
    assert main("-m", *SMOKE, *args, tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert "has no single best trial, only a Pareto front, so hydra.sweeper.patience cannot apply" in err
