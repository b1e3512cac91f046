"""One study, many workers, on a real PostgreSQL server that asks for a password: workers started together,
a killed worker, a database restart, and a password that appears nowhere."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from conftest import SEARCH, SMOKE, get, load_study, metrics, poll, run_dirs, server, start, train

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
# Trials of several seconds (about 1 s an epoch), beating every second, dead after 2 s of silence.
LONG = (
    "data.num_train=12000",
    "data.batch_size=100",
    "trainer.max_epochs=4",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=2",
)


def storage_arg(url: str) -> str:
    return f"hydra.sweeper.storage='{url}'"


def leaks(root: Path, secret: str, skip_hydra: bool) -> list[str]:
    """Files under root whose bytes contain the secret (TensorBoard events are binary: read bytes)."""
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes() and not (skip_hydra and ".hydra" in p.parts)
    ]


def wait_until_running(url: str, timeout: float = 60) -> optuna.trial.FrozenTrial:
    """The first trial once it is running and has reported an epoch."""
    trials = poll(lambda: load_study(url).trials, lambda ts: ts and ts[0].intermediate_values, timeout, every=0.2)
    assert trials and trials[0].intermediate_values, "no trial reported an epoch in time"
    return trials[0]


def test_two_workers_started_together_on_an_empty_database_share_one_study(tmp_path, postgres):
    url = postgres.url("together")  # the password in the URL: works, and stays out of every record
    # Trials of a second or more: a worker that starts a moment later still finds trials to take.
    procs = [
        start("-m", *SMOKE, *SEARCH, storage_arg(url), "hydra.sweeper.n_trials=4", "data.num_train=3000", tmp=tmp_path)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = load_study(url).trials
    counted = [t for t in trials if t.state in (State.COMPLETE, State.PRUNED)]
    assert len(counted) == 4 and all(t.state != State.RUNNING for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in counted}) == 4  # seeded per trial: no repeats
    assert len({t.user_attrs["worker"] for t in counted}) == 2  # both workers took trials
    # Every trial once, in one study folder, named by its trial number.
    runs = {metrics(r)["trial"]: r for r in run_dirs(tmp_path / "multirun" / "lenet5_optuna")}
    assert sorted(runs) == sorted(t.number for t in counted)
    assert all(r.name.startswith(f"{n:03d}_") for n, r in runs.items())
    # The password: masked on the console, absent from everything the project wrote (Hydra's .hydra files
    # record the command line verbatim: the README's recommended way keeps it off the command line).
    assert all(postgres.PASSWORD not in out and f"{postgres.USER}:***@" in out for out in outputs)
    assert leaks(tmp_path, postgres.PASSWORD, skip_hydra=True) == []


def test_the_recommended_way_leaves_the_password_nowhere_and_the_dashboard_shows_the_study(tmp_path, postgres):
    url = postgres.database("recommended")  # no password in the URL: libpq reads PGPASSWORD (or ~/.pgpass)
    env = {"PGPASSWORD": postgres.PASSWORD}
    out = train("-m", *SMOKE, *SEARCH, storage_arg(url), "hydra.sweeper.n_trials=2", tmp=tmp_path, env=env)
    assert postgres.PASSWORD not in out.stdout + out.stderr
    assert leaks(tmp_path, postgres.PASSWORD, skip_hydra=False) == []
    dashboard = [str(Path(sys.executable).parent / "optuna-dashboard"), url]
    os.environ["PGPASSWORD"] = postgres.PASSWORD
    try:
        with server(dashboard, "/api/studies") as base:
            (study,) = get(f"{base}/api/studies")["study_summaries"]
            detail = get(f"{base}/api/studies/{study['study_id']}")
    finally:
        del os.environ["PGPASSWORD"]
    assert study["study_name"] == "lenet5_optuna" and len(detail["trials"]) == 2
    assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned"}
    assert postgres.PASSWORD not in str(detail)


def test_a_wrong_password_is_one_clear_error(tmp_path, postgres):
    url = postgres.url("wrong").replace(postgres.PASSWORD, "not-the-password")
    proc = train("-m", *SMOKE, *SEARCH, storage_arg(url), tmp=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Cannot open the study's storage" in proc.stderr and f"{postgres.USER}:***@127.0.0.1" in proc.stderr
    assert "password authentication failed" in proc.stderr
    assert "not-the-password" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_a_killed_workers_trial_fails_when_the_next_worker_starts_and_is_tried_again(tmp_path, postgres):
    url = postgres.url("killed")
    worker = start("-m", *SMOKE, *SEARCH, *LONG, storage_arg(url), "hydra.sweeper.n_trials=1", tmp=tmp_path)
    dead = wait_until_running(url)
    worker.kill()  # SIGKILL: no chance to say anything to the study
    worker.wait()
    assert load_study(url).trials[0].state == State.RUNNING
    time.sleep(2.5)  # longer than the grace period
    out = train(
        "-m", *SMOKE, *SEARCH, *LONG, storage_arg(url), "hydra.sweeper.n_trials=1", "trainer.max_epochs=1", tmp=tmp_path
    ).stdout
    first, retry = load_study(url).trials
    assert first.state == State.FAIL and retry.state == State.COMPLETE and retry.params == dead.params
    assert f"trial {first.number} sent no heartbeat" in out and "queued again" in out


def test_a_database_restart_is_ridden_out_and_a_lost_database_stops_the_worker_cleanly(tmp_path, postgres):
    url = postgres.url("restart")
    worker = start("-m", *SMOKE, *SEARCH, *LONG, storage_arg(url), "hydra.sweeper.n_trials=1", tmp=tmp_path)
    wait_until_running(url)
    (checkpoint,) = (tmp_path / "multirun").glob("*/*/checkpoints/last.pt")
    postgres.stop()
    epoch = torch.load(checkpoint, weights_only=True)["progress"]["epoch"]
    # Down until the next epoch's checkpoint is written: the report right after it finds the database away.
    poll(lambda: torch.load(checkpoint, weights_only=True)["progress"]["epoch"], lambda e: e > epoch)
    time.sleep(1)
    postgres.start()
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    assert "the study's storage is unreachable" in out and "retrying" in out
    assert load_study(url).trials[0].state == State.COMPLETE

    url = postgres.url("lost")
    worker = start(
        "-m",
        *SMOKE,
        *SEARCH,
        *LONG,
        storage_arg(url),
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.storage_timeout=3",
        tmp=tmp_path / "lost",
    )
    wait_until_running(url)
    postgres.stop()
    try:
        out, _ = worker.communicate(timeout=120)
    finally:
        postgres.start()
    assert worker.returncode == 3, out
    assert "The study's storage was unreachable" in out and "this worker stops" in out
    assert "Traceback" not in out and postgres.PASSWORD not in out
    (run,) = run_dirs(tmp_path / "lost")
    assert metrics(run)["status"] == "failed" and (run / "checkpoints" / "last.pt").is_file()


def test_ctrl_c_records_the_trial_as_failed_and_the_search_goes_on_when_run_again(tmp_path):
    worker = start("-m", *SMOKE, *SEARCH, *LONG, "hydra.sweeper.n_trials=1", tmp=tmp_path)
    journal = tmp_path / "multirun" / "lenet5_optuna" / "optuna.journal"
    poll(
        lambda: journal.exists() and load_study(journal).trials, lambda ts: ts and ts[0].intermediate_values, every=0.2
    )
    worker.send_signal(signal.SIGINT)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 130, out
    (trial,) = load_study(journal).trials
    assert trial.state == State.FAIL and trial.system_attrs["fashionlab:failure"] == "interrupted"
    (run,) = run_dirs(tmp_path / "multirun")
    assert metrics(run)["status"] == "interrupted" and (run / "checkpoints" / "last.pt").is_file()
    train("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path)  # goes on: a new trial
    assert [t.state for t in load_study(journal).trials] == [State.FAIL, State.COMPLETE]
