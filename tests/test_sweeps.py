"""Sweeps: grid multiruns, and Optuna searches with the project's sweeper: pruning, failures, compare. (Searches
under joblib and submitit, with real processes: test_faults.py; make search: test_workers.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from conftest import (
    ROOT,
    SEARCH,
    SMOKE,
    events,
    get,
    journal,
    load_study,
    main,
    metrics,
    poll,
    run_dirs,
    session_groups,
    tensorboard,
    train,
)

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
# A search where pruning certainly happens: two learning rates on a grid, all else fixed, and a pruner of the
# user's own (conf/hydra/sweeper/pruner/threshold.yaml on the search path) that stops any trial under 0.5.
FIXED = (
    "optimizer=sgd",
    "optimizer.weight_decay=0",
    "data.batch_size=32",
    "model.conv2_channels=16",
    "model.fc1_features=120",
)
PRUNING = (
    *SMOKE,
    *SEARCH,
    "trainer.max_epochs=2",
    "hydra/sweeper/sampler=grid",
    "hydra/sweeper/pruner=threshold",
    *FIXED,
    "optimizer.lr=choice(0.05,0.0000001)",
)


@pytest.fixture
def user_conf(tmp_path) -> str:
    pruners = tmp_path / "conf" / "hydra" / "sweeper" / "pruner"
    pruners.mkdir(parents=True)
    (pruners / "threshold.yaml").write_text("_target_: optuna.pruners.ThresholdPruner\nlower: 0.5\n")
    return f"hydra.searchpath=[file://{tmp_path}/conf]"


def session_status(run_dir: Path) -> int:
    content = events(run_dir).PluginTagToContent("hparams")["_hparams_/session_end_info"]
    return plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info.status


def test_grid_multirun_writes_a_named_run_per_job_and_compare_ranks_them(tmp_path):
    assert main("-m", *SMOKE, "model=lenet5,mlp", "optimizer.lr=0.1,0.01", tmp=tmp_path) == 0
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    runs = run_dirs(sweep)
    assert sorted(r.name for r in runs) == [
        "0_experiment=smoke,model=lenet5,optimizer.lr=0.1",
        "1_experiment=smoke,model=lenet5,optimizer.lr=0.01",
        "2_experiment=smoke,model=mlp,optimizer.lr=0.1",
        "3_experiment=smoke,model=mlp,optimizer.lr=0.01",
    ]
    for r in runs:
        assert "val/acc" in events(r).Tags()["scalars"]
    sweep_run = events(sweep / "_sweep")
    assert [e.step for e in sweep_run.Scalars("sweep/val/acc")] == [0, 1, 2, 3]
    best = [e.value for e in sweep_run.Scalars("sweep/best_val/acc")]
    assert best == sorted(best) and best[-1] == max(metrics(r)["objective"]["value"] for r in runs)
    assert (sweep / "leaderboard.txt").is_file() and (sweep / "comparison.png").stat().st_size > 10_000

    out = train(str(sweep), tmp=tmp_path, script="src/compare.py").stdout
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "run", "model", "optimizer.lr"]
    values = [float(line.split()[4]) for line in lines[2:6]]
    assert values == sorted(values, reverse=True) and values[0] == best[-1]


def test_compare_says_when_there_are_no_runs(tmp_path):
    proc = train(str(tmp_path), tmp=tmp_path, script="src/compare.py", check=False)
    assert proc.returncode == 1 and "no runs under" in proc.stderr and "Traceback" not in proc.stderr


def test_a_pruned_trial_is_pruned_in_the_study_its_record_tensorboard_and_the_leaderboard(tmp_path, user_conf, capsys):
    assert main("-m", *PRUNING, user_conf, tmp=tmp_path) == 0
    out = capsys.readouterr().out
    trials = {t.params["optimizer.lr"]: t for t in load_study(journal(tmp_path)).trials}
    good, bad = trials[0.05], trials[1e-7]
    assert good.state == State.COMPLETE and bad.state == State.PRUNED and list(bad.intermediate_values) == [1]
    assert f"trial {bad.number} pruned after epoch 1" in out and "of 2 trials" in out  # the progress line

    study_dir = tmp_path / "multirun" / "lenet5_optuna"  # one folder per study, one run folder per trial
    by_trial = {metrics(r)["trial"]: r for r in run_dirs(study_dir)}
    assert sorted(p.name for p in by_trial.values()) == sorted(
        [f"{good.number:03d}_lr=0.05", f"{bad.number:03d}_lr=1e-07"]
    )
    pruned = metrics(by_trial[bad.number])
    assert pruned["status"] == "pruned" and pruned["study"] == "lenet5_optuna" and pruned["epochs"] == 1
    assert pruned["val/acc"] == bad.intermediate_values[1] and "test/acc" not in pruned
    assert metrics(by_trial[good.number])["status"] == "completed"
    # It stopped at once, with its checkpoint written and its TensorBoard run closed with an outcome.
    ckpt = torch.load(by_trial[bad.number] / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["progress"]["epoch"] == 1
    assert session_status(by_trial[bad.number]) == api_pb2.Status.Value("STATUS_SUCCESS")

    board = train(str(study_dir), tmp=tmp_path, script="src/compare.py").stdout.splitlines()
    assert board[0].split()[:4] == ["#", "run", "optimizer.lr", "best"]  # only what differs
    assert [row.split()[1] for row in board[2:4]] == [str(good.number), str(bad.number)]
    assert board[2].split()[-1] == "completed" and board[3].split()[-1] == "pruned" and "1/2" in board[3]
    sweep_run = events(study_dir / "_sweep")
    assert [(e.step, e.value) for e in sweep_run.Scalars("sweep/pruned_val/acc")] == [
        (bad.number, pytest.approx(bad.value))
    ]
    assert [e.step for e in sweep_run.Scalars("sweep/val/acc")] == [good.number]

    with tensorboard(study_dir) as base:  # what a user sees in HPARAMS: the searched parameter first, the status
        groups = poll(lambda: session_groups(base), lambda g: len(g) == 2)
        assert {g["hparams"]["status"] for g in groups} == {"completed", "pruned"}
        experiment = get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        assert experiment["hparamInfos"][0]["name"] == "optimizer.lr"


def test_an_optuna_search_continues_its_study_up_to_n_trials(tmp_path, capsys):
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=2", tmp=tmp_path) == 0
    first = load_study(journal(tmp_path)).trials
    assert [t.state for t in first] == [State.COMPLETE] * 2
    result = yaml.safe_load((tmp_path / "multirun" / "lenet5_optuna" / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(t.value for t in first)

    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=3", tmp=tmp_path) == 0  # the study's total
    trials = load_study(journal(tmp_path)).trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[2].params not in [t.params for t in first]  # seeded by trial number: a new draw
    assert len(run_dirs(tmp_path / "multirun" / "lenet5_optuna")) == 3

    capsys.readouterr()
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=3", tmp=tmp_path) == 0
    out = capsys.readouterr().out
    assert "nothing more to start" in out and len(load_study(journal(tmp_path)).trials) == 3


def test_a_failing_trial_is_recorded_and_the_search_stops_past_its_failure_budget(tmp_path, capsys):
    # A grid whose last trial diverges (the released sweeper crashes there, calling Study.stop outside optimize).
    args = (
        "-m",
        *SMOKE,
        *SEARCH,
        "hydra/sweeper/sampler=grid",
        *FIXED,
        "optimizer.lr=choice(0.05,10000.0)",
        "hydra.sweeper.storage=null",
    )
    assert main(*args, tmp=tmp_path) == 0
    runs = {metrics(r)["hparams"]["optimizer.lr"]: metrics(r) for r in run_dirs(tmp_path / "multirun")}
    assert runs[10000.0]["status"] == "diverged" and runs[10000.0]["objective"]["value"] is None
    assert runs[0.05]["status"] == "completed"
    assert runs[10000.0]["trial"] == 1, "the diverging trial should be the grid's last"
    sweep = tmp_path / "multirun" / "lenet5_optuna"
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_params"]["optimizer.lr"] == 0.05
    (diverged,) = [r for r in run_dirs(sweep) if metrics(r)["status"] == "diverged"]
    assert session_status(diverged) == api_pb2.Status.Value("STATUS_FAILURE")

    capsys.readouterr()
    assert main(*args, "hydra.sweeper.max_failure_rate=0", tmp=tmp_path / "strict") == 3
    err = capsys.readouterr().err
    assert "The search stopped: 1 of its 2 trials failed" in err and "Traceback" not in err


def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    same = f"hydra.sweep.dir=${{unique_dir:{tmp_path}/sweep}}"  # the same name for both: forces the collision
    cmd = [sys.executable, str(ROOT / "src/train.py"), "-m", *SMOKE, same, "logging.embedding=false"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    assert sorted(d.name for d in tmp_path.iterdir()) == ["sweep", "sweep-2"]
    assert all(len(run_dirs(tmp_path / d)) == 1 for d in ("sweep", "sweep-2"))


def test_a_freed_slot_is_refilled_while_another_trial_still_runs(tmp_path):
    # Trials of 1, 3 and 5 epochs, two at a time (joblib): the third starts when the shorter of the first two
    # ends, not when both have (Hydra's launchers wait for a whole batch; the sweeper launches one job a slot).
    args = (
        "-m",
        *SMOKE,
        *SEARCH,
        *FIXED,
        "optimizer.lr=0.05",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra/sweeper/sampler=grid",
        "hydra/sweeper/pruner=none",
        "trainer.max_epochs=choice(1,3,5)",
        "logging.embedding=false",
    )
    train(*args, tmp=tmp_path, timeout=240)
    # The study's own clock: a trial starts when the sweeper asks for it, completes when it is told.
    trials = sorted(load_study(journal(tmp_path)).trials, key=lambda t: t.datetime_start)
    assert sorted(t.params["trainer.max_epochs"] for t in trials) == [1, 3, 5]  # every grid point once
    first, second, third = trials
    assert third.datetime_start < max(first.datetime_complete, second.datetime_complete)  # one still ran
    assert third.datetime_start >= min(first.datetime_complete, second.datetime_complete)  # in the freed slot
