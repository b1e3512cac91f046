"""Searches under other launchers: real submitit processes (what SLURM runs), and `make search WORKERS=N`."""

from __future__ import annotations

import subprocess

import optuna
import pytest

from conftest import ROOT, SMOKE, environment, journal, load_study, metrics, run_dirs, train
from test_sweeps import PRUNING, user_conf  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


def test_submitit_jobs_know_their_trial_and_are_pruned(tmp_path, user_conf):  # noqa: F811
    # submitit_local runs each trial as its own process, as submitit_slurm does on a cluster node.
    train(
        "-m",
        *PRUNING,
        user_conf,
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_jobs=2",
        "hydra.launcher.timeout_min=5",
        tmp=tmp_path,
        timeout=240,
    )
    states = sorted(t.state.name for t in load_study(journal(tmp_path)).trials)
    assert states == ["COMPLETE", "PRUNED"]
    study_dir = tmp_path / "multirun" / "lenet5_optuna"
    assert sorted(metrics(r)["status"] for r in run_dirs(study_dir)) == ["completed", "pruned"]
    assert list((study_dir / ".submitit").iterdir()), "the jobs ran through submitit"


def test_make_search_starts_n_workers_on_one_study(tmp_path):
    # Trials of a second or more: a worker that starts a moment later still finds trials to take.
    args = f"{' '.join(SMOKE)} hydra.sweeper.n_trials=4 data.num_train=3000 paths.multirun_dir={tmp_path}/multirun"
    proc = subprocess.run(
        ["make", "search", "WORKERS=2", f"ARGS={args}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=environment(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = load_study(journal(tmp_path)).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and sorted(metrics(r)["trial"] for r in run_dirs(tmp_path / "multirun")) == sorted(
        t.number for t in done
    )
    assert len({t.user_attrs["worker"] for t in done}) == 2
