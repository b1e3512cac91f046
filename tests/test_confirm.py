"""Winners you can trust: repeats of a configuration grouped by seed, and confirmation of a search's best trials."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
from pathlib import Path

import pytest
import yaml
from scipy import stats

from conftest import ROOT, SEARCH, SMOKE, StopAtStep, journal, load_study, main, metrics, train
from fashionlab.leaderboard.groups import grouped, verdict
from fashionlab.leaderboard.table import configurations, leaderboard
from fashionlab.runs import load_runs

# A search whose trials differ: 3 trials of 1 epoch (no pruning), then the best 2 confirmed with 2 seeds each.
TINY = (
    *SMOKE,
    *SEARCH,
    "hydra.sweeper.n_trials=3",
    "data.num_train=400",
    "data.val_size=100",
    "hydra/sweeper/pruner=none",
)


def fake_run(folder: Path, lr: float, seed: int, val: float, test: float, status: str = "completed") -> None:
    folder.mkdir(parents=True)
    run = {
        "status": status,
        "objective": {"metric": "val/acc", "mode": "max", "value": val if status == "completed" else None},
        "test/acc": test,
        "epochs": 2,
        "max_epochs": 2,
        "wall_time_s": 1.0,
        "job": {"num": 0},
        "hparams": {"optimizer.lr": lr, "seed": seed},
        "seed": seed,
    }
    (folder / "metrics.json").write_text(json.dumps(run))


def test_runs_that_differ_only_by_seed_are_one_configuration_with_mean_sd_and_interval(tmp_path):
    values = {0.1: [0.80, 0.82, 0.81], 0.03: [0.85, 0.86, 0.90]}
    for lr, vals in values.items():
        for seed, v in enumerate(vals):
            fake_run(tmp_path / f"lr={lr},seed={seed}", lr, seed, v, v - 0.01)
    fake_run(tmp_path / "lr=0.003,seed=0", 0.003, 0, 0.5, 0.5, status="pruned")
    runs = load_runs(tmp_path)
    groups = grouped(runs)
    assert [g.first["hparams"]["optimizer.lr"] for g in groups] == [0.03, 0.1, 0.003]  # by mean; pruned last
    best = groups[0]
    assert len(best.done) == 3 and best.mean == pytest.approx(statistics.fmean(values[0.03]))
    assert best.sd == pytest.approx(statistics.stdev(values[0.03]))
    half = stats.t.ppf(0.975, 2) * statistics.stdev(values[0.03]) / math.sqrt(3)
    assert best.interval() == pytest.approx(half)
    table = configurations(runs)
    assert f"{statistics.fmean(values[0.03]):.4f} +/- {statistics.stdev(values[0.03]):.4f}" in table
    assert f"{best.mean - half:.4f} .. {best.mean + half:.4f}" in table
    assert "0,1,2" in table  # the seeds each configuration has
    p = stats.ttest_ind(values[0.03], values[0.1], equal_var=False).pvalue
    assert p < 0.05 and f"p = {p:.3f}" in verdict(groups) and "is better than" in verdict(groups)
    assert leaderboard(runs).startswith(table.splitlines()[0])  # the configurations come first


def test_configurations_that_the_seeds_cannot_tell_apart_tie(tmp_path):
    for lr, vals in {0.1: [0.80, 0.86, 0.83], 0.03: [0.84, 0.81, 0.85]}.items():
        for seed, v in enumerate(vals):
            fake_run(tmp_path / f"{lr}-{seed}", lr, seed, v, v)
    said = verdict(grouped(load_runs(tmp_path)))
    assert "tie: the data cannot tell them apart" in said


@pytest.mark.slow  # a search, its confirmation, then confirm.py interrupted and started again
def test_confirmation_records_the_top_trials_means_and_confirm_py_trains_only_what_is_missing(tmp_path, capsys):
    args = (*TINY, "hydra.sweeper.confirm.top_k=2", "hydra.sweeper.confirm.seeds=2")
    assert main("-m", *args, tmp=tmp_path) == 0
    folder = tmp_path / "multirun" / "lenet5_optuna"
    study = load_study(journal(tmp_path))
    done = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)[:2]
    confirm_runs = sorted((folder / "confirm").rglob("metrics.json"))
    assert len(confirm_runs) == 4  # k x n
    for t in done:
        runs = [metrics(f.parent) for f in confirm_runs if f.parent.parent.name.startswith(f"{t.number:03d}_")]
        assert sorted(r["seed"] for r in runs) == [1, 2] and all(r["status"] == "completed" for r in runs)
        assert all(r["confirms"] == t.number and r["split_seed"] == r["seed"] for r in runs)
        values = [t.value] + [r["objective"]["value"] for r in runs]
        attrs = study.user_attrs[f"confirmed trial {t.number}"]
        assert attrs["n"] == 3 and attrs["mean"] == pytest.approx(statistics.fmean(values))
        assert attrs["sd"] == pytest.approx(statistics.stdev(values)) and sorted(attrs["seeds"]) == [0, 1, 2]
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    assert results["best_trial"] == study.best_trial.number  # the search's own choice, beside the confirmed one
    ranked = sorted(done, key=lambda t: -study.user_attrs[f"confirmed trial {t.number}"]["mean"])
    assert results["confirmed"]["best_trial"] == ranked[0].number
    assert "best against runner-up" in results["confirmed"]["verdict"]
    board = (folder / "leaderboard.txt").read_text()
    assert "n  val/acc mean +/- sd" in board and "best against runner-up" in board

    # A third seed for the best trial, interrupted at step 5 of its first epoch: a checkpoint, not a result.
    spec = importlib.util.spec_from_file_location("confirm", ROOT / "src" / "confirm.py")
    confirm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(confirm)
    trials = len(study.trials)
    assert main(*confirm.train_args(folder, 1, 3, []), tmp=tmp_path, callbacks=[StopAtStep(5)]) == 130
    (third,) = (folder / "confirm").glob("*/seed=3")
    assert metrics(third)["status"] == "interrupted"
    capsys.readouterr()
    assert main(*confirm.train_args(folder, 1, 3, []), tmp=tmp_path) == 0  # started again: only seed 3, resumed
    out = capsys.readouterr().out
    assert (
        "1 runs to train (2 done already)" in out
        and f"resuming {third} at epoch 1" in (third / "train.log").read_text()
    )
    # The command itself, as a user runs it (a process): everything there, nothing to train.
    proc = train(str(folder), "--top", "1", "--seeds", "3", tmp=tmp_path, script="src/confirm.py")
    assert "0 runs to train (3 done already)" in proc.stdout + proc.stderr
    assert len(load_study(journal(tmp_path)).trials) == trials  # confirmation starts no trial of the search
    assert [metrics(p.parent)["status"] for p in (folder / "confirm").rglob("metrics.json")] == ["completed"] * 5
