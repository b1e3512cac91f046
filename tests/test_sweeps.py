"""Sweeps: grid multiruns and Optuna searches, one TensorBoard run per trial, failures, parallel trials, compare."""
from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, SMOKE, metrics, run_dirs, train
from test_train import free_port, get

SEARCH = ("hparams_search=lenet5_optuna",)


def study(tmp, name="lenet5_optuna"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp}/multirun/optuna/{name}.db")


def events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def test_grid_multirun_writes_a_named_run_per_job_and_compare_ranks_them(tmp_path):
    train("-m", *SMOKE, "model=lenet5,mlp", "optimizer.lr=0.1,0.01", tmp=tmp_path)
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    runs = run_dirs(sweep)
    assert sorted(r.name for r in runs) == [
        "0_experiment=smoke,model=lenet5,optimizer.lr=0.1", "1_experiment=smoke,model=lenet5,optimizer.lr=0.01",
        "2_experiment=smoke,model=mlp,optimizer.lr=0.1", "3_experiment=smoke,model=mlp,optimizer.lr=0.01"]
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


def test_optuna_search_logs_every_trial_and_continues_its_study(tmp_path):
    train("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=3", tmp=tmp_path)
    first = study(tmp_path).trials
    assert [t.state for t in first] == [optuna.trial.TrialState.COMPLETE] * 3
    (sweep,) = (tmp_path / "multirun").glob("2*/*")
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(t.value for t in first)

    port = free_port()  # what a user sees: one HPARAMS row per trial, with its parameters
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = {"experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "aggregationType": "AGGREGATION_AVG"}
        deadline, groups = time.time() + 60, []
        while time.time() < deadline and len(groups) < 3:
            try:
                groups = get(f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups", body)["sessionGroups"]
            except OSError:
                time.sleep(0.5)
        assert sorted(g["hparams"]["optimizer.lr"] for g in groups) == sorted(t.params["optimizer.lr"] for t in first)
    finally:
        server.terminate()
        server.wait(10)

    train("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path)  # the same search again
    trials = study(tmp_path).trials
    assert len(trials) == 4
    old = {tuple(sorted(t.params.items())) for t in first}
    assert all(tuple(sorted(t.params.items())) not in old for t in trials[3:])  # new draws, not repeats


def test_a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(tmp_path):
    # A user's own search preset, as the README says: copy one and change it.
    presets = tmp_path / "conf" / "hparams_search"
    presets.mkdir(parents=True)
    (presets / "diverge.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /hydra/sweeper: optuna\n  - override /hydra/sweeper/sampler: tpe\n"
        "hydra:\n  sweeper:\n    direction: maximize\n    study_name: diverge\n    storage: null\n"
        "    n_trials: 3\n    max_failure_rate: 0.5\n    sampler:\n      seed: 0\n"
        "    params:\n      optimizer.lr: choice(10000.0, 0.05)\n")  # seed 0 draws 0.05, 1e4, 0.05
    train("-m", *SMOKE, "hparams_search=diverge", f"hydra.searchpath=[file://{tmp_path}/conf]",
          tmp=tmp_path)
    (sweep,) = (tmp_path / "multirun").glob("2*/*")
    runs = run_dirs(sweep)
    assert len(runs) == 3
    by_lr = {metrics(r)["hparams"]["optimizer.lr"]: r for r in runs}
    assert metrics(by_lr[10000.0])["status"] == "diverged"
    assert metrics(by_lr[10000.0])["objective"]["value"] is None
    assert metrics(by_lr[0.05])["status"] == "completed"
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_params"] == {"optimizer.lr": 0.05}
    # Its TensorBoard run says so: the HPARAMS session ended with a failure status.
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    content = events(by_lr[10000.0]).PluginTagToContent("hparams")["_hparams_/session_end_info"]
    status = plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info.status
    assert status == api_pb2.Status.Value("STATUS_FAILURE")


def test_joblib_runs_trials_in_parallel_with_shared_out_threads(tmp_path):
    train("-m", *SMOKE, *SEARCH, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=2",
          "data.num_train=4000", tmp=tmp_path, timeout=240)
    runs = [metrics(r) for r in run_dirs(tmp_path / "multirun")]
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    (a, b) = runs
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # they overlapped
    assert a["threads"] == b["threads"] == max(1, (__import__("os").cpu_count() or 1) // 2)


def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    same = f"hydra.sweep.dir=${{unique_dir:{tmp_path}/sweep}}"  # the same name for both: forces the collision
    cmd = [sys.executable, str(ROOT / "src/train.py"), "-m", *SMOKE, same, "logging.embedding=false"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    assert sorted(d.name for d in tmp_path.iterdir()) == ["sweep", "sweep-2"]
    assert all(len(run_dirs(tmp_path / d)) == 1 for d in ("sweep", "sweep-2"))
