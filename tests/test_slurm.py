"""SLURM for real: a single-node cluster started by the tests (slurm_cluster.py), searches whose trials are its jobs,
and what clusters do to jobs: preemption, requeues, a time limit, a cancelled job, a killed process, a signal to the
sweeper; and the README's sbatch array of workers sharing one study. Each xdist worker that runs these tests starts
a cluster of its own (its own ports, state and munge key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from conftest import ROOT, SEARCH, SMOKE, command, environment, journal, load_study, metrics, poll, run_dirs
from slurm_cluster import Cluster, missing

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
# Trials as jobs of 1 CPU, no GPU, two at a time on the test cluster's node.
SLURM = (
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.array_parallelism=2",
    "hydra.launcher.timeout_min=5",
)
LONG = ("hydra/sweeper/pruner=none", "data.num_train=6000", "trainer.max_epochs=12", "logging.embedding=false")


@pytest.fixture(scope="session")  # one cluster for each xdist worker that runs these tests
def slurm():
    why = missing()
    if why:
        pytest.skip(f"no SLURM test cluster: {why}")
    with Cluster() as cluster:
        yield cluster
    assert all(p.poll() is not None for p in cluster.procs.values()), "a daemon of the test cluster is still running"


def search(slurm: Cluster, tmp: Path, *args: str) -> subprocess.Popen:
    """The project's search, its trials SLURM jobs of the test cluster, started as a user starts it."""
    return subprocess.Popen(
        command("-m", *SMOKE, *SEARCH, *SLURM, *args, tmp=tmp),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(slurm.env),
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert "Traceback" not in out, out[-4000:]
    return out


def study_dir(tmp: Path) -> Path:
    return tmp / "multirun" / "lenet5_optuna"


def started(tmp: Path, n: int, timeout: float = 120) -> dict[str, Path]:
    """Once `n` trials have written a checkpoint: {their SLURM job: their run folder}."""
    ckpts = poll(lambda: list(study_dir(tmp).glob("0*/checkpoints/last.pt")), lambda c: len(c) >= n, timeout)
    assert ckpts and len(ckpts) >= n, "the trials did not start"
    runs = [c.parents[1] for c in ckpts]
    return {json.loads((r / "run_info.json").read_text())["slurm_job"]: r for r in runs}


def epochs_trained(run: Path) -> list[int]:
    """The epochs a run's log says it finished, in order (a requeued job's lines follow the first's)."""
    return [
        int(line.split("epoch ")[1].split("/")[0])
        for line in (run / "train.log").read_text().splitlines()
        if "][INFO] epoch " in line
    ]


def test_a_pruned_search_runs_its_trials_as_slurm_jobs_in_flight(tmp_path, slurm):
    out = finish(search(slurm, tmp_path, "hydra.sweeper.n_trials=4", "trainer.max_epochs=2", "data.num_train=1500"))
    trials = load_study(journal(tmp_path)).trials
    assert [t.state in (State.COMPLETE, State.PRUNED) for t in trials] == [True] * 4
    assert {State.COMPLETE, State.PRUNED} <= {t.state for t in trials}, "successive halving pruned none"
    first, second = sorted(trials, key=lambda t: t.datetime_start)[:2]
    assert second.datetime_start < first.datetime_complete  # two trials in flight
    runs = {metrics(r)["trial"]: r for r in run_dirs(study_dir(tmp_path))}
    assert sorted(runs) == [0, 1, 2, 3]
    jobs = {json.loads((r / "run_info.json").read_text())["slurm_job"] for r in runs.values()}
    assert len(jobs) == 4  # each trial a job of its own
    for t in trials:
        assert metrics(runs[t.number])["status"] == {State.COMPLETE: "completed", State.PRUNED: "pruned"}[t.state]
    folder = study_dir(tmp_path)
    assert (folder / "leaderboard.txt").is_file() and (folder / "comparison.png").is_file()
    assert list((folder / "_sweep").glob("events.out.tfevents.*")) and "the study has 4 finished" in out
    assert slurm.jobs() == []


def test_preempted_and_requeued_trials_continue_their_checkpoint_up_to_the_requeue_bound(tmp_path, slurm):
    proc = search(slurm, tmp_path, "hydra.sweeper.n_trials=2", "hydra.launcher.max_num_timeout=1", *LONG)
    jobs = started(tmp_path, 2)
    (preempted, a), (requeued, b) = sorted(jobs.items())
    slurm.run("scancel", "--signal=USR2", preempted)  # what SLURM sends before a preemption or the time limit
    slurm.run("scontrol", "requeue", requeued)  # an administrator's requeue: SIGTERM, then the job starts again
    again = poll(lambda: (a / "train.log").read_text(), lambda log: "started again (SLURM requeued it)" in log)
    assert "started again" in again
    slurm.run("scancel", "--signal=USR2", preempted)  # a second preemption: past hydra.launcher.max_num_timeout=1
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]

    trials = {t.user_attrs["run_dir"]: t for t in load_study(journal(tmp_path)).trials}
    assert len(trials) == 2  # the same trials all along: no retry was queued
    failed, done = trials[str(a)], trials[str(b)]
    assert done.state == State.COMPLETE and sorted(done.intermediate_values) == list(range(1, 13))
    assert "started again (SLURM requeued it)" in (b / "train.log").read_text()
    assert epochs_trained(b) == list(range(1, 13))  # from its checkpoint: no epoch trained twice
    assert failed.state == State.FAIL and failed.system_attrs["fashionlab:failure"] == "failed"
    assert (
        "2 times, and hydra.launcher.max_num_timeout=1 requeues are allowed" in failed.system_attrs["fashionlab:error"]
    )
    assert metrics(a)["status"] == "failed" and "requeue 1 of 1" in (a / "train.log").read_text()
    assert epochs_trained(a) == sorted(set(epochs_trained(a)))  # continued its checkpoint, never from epoch 1
    assert slurm.jobs() == []


def test_a_cancelled_or_killed_trial_job_is_failed_within_a_minute_and_its_retry_continues(tmp_path, slurm):
    proc = search(slurm, tmp_path, "hydra.sweeper.n_trials=2", *LONG)
    jobs = started(tmp_path, 2)
    (cancelled, a), (killed, b) = sorted(jobs.items())
    fault = time.time()
    slurm.run("scancel", cancelled)
    os.kill(job_process(slurm, killed), signal.SIGKILL)  # as the OOM killer or a lost node does: nothing is said
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]

    trials = load_study(journal(tmp_path)).trials
    lost = [t for t in trials if t.state == State.FAIL]
    assert sorted(t.user_attrs["run_dir"] for t in lost) == sorted([str(a), str(b)])
    for t in lost:
        assert (
            t.system_attrs["fashionlab:failure"] == "lost" and "without a result" in t.system_attrs["fashionlab:error"]
        )
        assert t.datetime_complete.timestamp() - fault < 60  # known within a minute, with no accounting
    retries = [t for t in trials if t.state == State.COMPLETE]
    assert sorted(t.user_attrs["fashionlab:continues"] for t in retries) == sorted(t.number for t in lost)
    for run in (a, b):  # each retry continued the lost trial's folder from its checkpoint
        assert metrics(run)["status"] == "completed" and f"resuming {run} at epoch " in (run / "train.log").read_text()
    assert f"trial {lost[0].number} lost: SLURM job" in out and slurm.jobs() == []


def job_process(slurm: Cluster, job: str) -> int:
    """The trial's own Python process of SLURM job `job` of this cluster (the one whose environment names both)."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = environ.read_bytes()
            cmdline = (environ.parent / "cmdline").read_bytes()
        except OSError:
            continue
        mine = f"SLURM_JOB_ID={job}\0".encode() in env and f"SLURM_CONF={slurm.conf}\0".encode() in env
        if mine and b"submitit.core._submit" in cmdline:
            return int(environ.parent.name)
    raise AssertionError(f"no process of job {job}")


def test_a_signal_to_the_sweeper_stops_its_trials_and_leaves_no_job_in_the_queue(tmp_path, slurm):
    # Three trials at once on a node of two CPUs: two run, one waits in the queue.
    proc = search(slurm, tmp_path, "hydra.sweeper.n_trials=3", "hydra.launcher.array_parallelism=3", *LONG)
    started(tmp_path, 2)
    assert sorted(j.split()[1] for j in slurm.jobs()) == ["PENDING", "RUNNING", "RUNNING"]
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, 60)
    assert proc.returncode == 130 and "the search stopped (signal 15)" in out, out[-3000:]
    everything = load_study(journal(tmp_path)).trials
    trials = [t for t in everything if t.state != State.WAITING]
    assert len(trials) == 3 and all(t.system_attrs["fashionlab:failure"] == "interrupted" for t in trials)
    queued = sorted(t.user_attrs["fashionlab:continues"] for t in everything if t.state == State.WAITING)
    assert queued == sorted(t.number for t in trials)  # the next start continues them
    for run in run_dirs(study_dir(tmp_path)):  # the two that ran stopped at their batch, with a checkpoint
        assert metrics(run)["status"] == "interrupted" and (run / "checkpoints" / "last.pt").is_file()
    assert slurm.jobs() == []


def test_the_readme_sbatch_array_is_workers_of_one_study(tmp_path, slurm):
    """README, "SLURM": the search itself as an array of 2 tasks, each a worker of the study in a journal file."""
    script = tmp_path / "search.sbatch"
    train = " ".join(command("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=4", "trainer.threads=1", tmp=tmp_path))
    script.write_text(f"#!/bin/bash\n#SBATCH --array=1-2 --cpus-per-task=1 --mem=1G\ncd {ROOT} && {train}\n")
    job = slurm.run("sbatch", "--parsable", "--output", str(tmp_path / "worker-%a.out"), str(script)).stdout.strip()
    done = poll(lambda: slurm.jobs(), lambda jobs: not any(j.startswith(f"{job}_") for j in jobs), 180)
    assert not done, done
    trials = load_study(journal(tmp_path)).trials
    assert len(trials) == 4 and all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both array tasks took trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # every trial once
    logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.out"))
    assert logs.count("Study lenet5_optuna in") == 2 and "Traceback" not in logs


def test_a_real_time_limit_requeues_the_trial_and_it_continues_its_checkpoint(tmp_path, slurm):
    """timeout_min=1: SLURM's USR2 comes on its 30-second tick before the limit; the trial checkpoints at its batch,
    submitit requeues the job, and it continues, as often as it takes (about 32 s of training, 1-minute jobs)."""
    limits = ("hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=5")
    proc = search(slurm, tmp_path, "hydra.sweeper.n_trials=1", *limits, *LONG[:-2], "trainer.max_epochs=64")
    out = finish(proc, 400)
    assert proc.returncode == 0, out[-3000:]
    (trial,) = load_study(journal(tmp_path)).trials
    (run,) = run_dirs(study_dir(tmp_path))
    log = (run / "train.log").read_text()
    assert trial.state == State.COMPLETE and "requeue 1 of 5" in log and "started again" in log
    assert epochs_trained(run) == list(range(1, 65))  # every epoch once: each start continued the checkpoint
    assert sorted(trial.intermediate_values) == list(range(1, 65)) and metrics(run)["epochs"] == 64
