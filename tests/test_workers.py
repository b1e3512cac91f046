"""One study, many workers, on a real PostgreSQL server that asks for a password: workers started together,
a killed worker, a database restart, and a password that appears nowhere."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from conftest import (
    ROOT,
    SEARCH,
    SMOKE,
    StopAtStep,
    environment,
    get,
    load_study,
    main,
    metrics,
    poll,
    run_dirs,
    server,
    start,
)

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
# Trials of several seconds (a second or two an epoch), beating every second, dead after 2 s of silence.
LONG = (
    "data.num_train=4000",
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


def test_make_search_starts_two_workers_on_an_empty_database_and_they_share_one_study(tmp_path, postgres):
    url = postgres.url("together")  # the password in the URL: works, and stays out of every record
    # `make search WORKERS=2` starts both workers at once, as a user would. Trials of a second or more: a worker
    # that starts a moment later still finds trials to take.
    args = (
        f"{' '.join(SMOKE)} {storage_arg(url)} hydra.sweeper.n_trials=4 data.num_train=2000 "
        f"paths.multirun_dir={tmp_path}/multirun"
    )
    proc = subprocess.run(
        ["make", "search", "WORKERS=2", f"ARGS={args}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=environment(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outputs = [proc.stdout + proc.stderr]
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
    assert outputs[0].count("Study lenet5_optuna in") == 2  # two workers, one study
    assert leaks(tmp_path, postgres.PASSWORD, skip_hydra=True) == []


def test_the_recommended_way_leaves_the_password_nowhere_and_the_dashboard_shows_the_study(
    tmp_path, postgres, capsys, monkeypatch
):
    url = postgres.database("recommended")  # no password in the URL: libpq reads PGPASSWORD (or ~/.pgpass)
    monkeypatch.setenv("PGPASSWORD", postgres.PASSWORD)
    assert main("-m", *SMOKE, *SEARCH, storage_arg(url), "hydra.sweeper.n_trials=2", tmp=tmp_path) == 0
    out, err = capsys.readouterr()
    assert postgres.PASSWORD not in out + err
    assert leaks(tmp_path, postgres.PASSWORD, skip_hydra=False) == []
    dashboard = [str(Path(sys.executable).parent / "optuna-dashboard"), url]
    with server(dashboard, "/api/studies") as base:  # the server inherits PGPASSWORD
        (study,) = get(f"{base}/api/studies")["study_summaries"]
        detail = get(f"{base}/api/studies/{study['study_id']}")
    assert study["study_name"] == "lenet5_optuna" and len(detail["trials"]) == 2
    assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned"}
    assert postgres.PASSWORD not in str(detail)


def test_a_wrong_password_is_one_clear_error(tmp_path, postgres, capsys):
    url = postgres.url("wrong").replace(postgres.PASSWORD, "not-the-password")
    assert main("-m", *SMOKE, *SEARCH, storage_arg(url), tmp=tmp_path) == 2
    out, err = capsys.readouterr()
    assert "Cannot open the study's storage" in err and f"{postgres.USER}:***@127.0.0.1" in err
    assert "password authentication failed" in err
    assert "not-the-password" not in err + out and "Traceback" not in err


def test_a_killed_workers_trial_fails_when_the_next_worker_starts_and_is_tried_again(tmp_path, postgres, capsys):
    url = postgres.url("killed")
    worker = start("-m", *SMOKE, *SEARCH, *LONG, storage_arg(url), "hydra.sweeper.n_trials=1", tmp=tmp_path)
    dead = wait_until_running(url)
    worker.kill()  # SIGKILL: no chance to say anything to the study
    worker.wait()
    assert load_study(url).trials[0].state == State.RUNNING
    time.sleep(2.5)  # let the grace period (2 s) pass: a clock the test waits on, not a race
    args = (*LONG, storage_arg(url), "hydra.sweeper.n_trials=1")
    assert main("-m", *SMOKE, *SEARCH, *args, tmp=tmp_path) == 0  # the next worker, here in this process
    out = capsys.readouterr().out
    first, retry = load_study(url).trials
    assert first.state == State.FAIL and retry.state == State.COMPLETE and retry.params == dead.params
    assert f"trial {first.number} sent no heartbeat" in out and "queued again" in out
    # The retry continues the dead trial's folder from its last checkpoint, and reports its epochs again.
    assert f"trial {retry.number} continues trial {first.number} from its last checkpoint" in out
    (run,) = run_dirs(tmp_path / "multirun")
    assert metrics(run)["trial"] == retry.number and metrics(run)["epochs"] == 4
    assert f"resuming {run} at epoch " in (run / "train.log").read_text()
    assert retry.intermediate_values[1] == first.intermediate_values[1]


def test_a_database_restart_is_ridden_out_and_a_lost_database_stops_the_worker_cleanly(tmp_path, postgres):
    url = postgres.url("restart")
    worker = start("-m", *SMOKE, *SEARCH, *LONG, storage_arg(url), "hydra.sweeper.n_trials=1", tmp=tmp_path)
    wait_until_running(url)
    (log,) = (tmp_path / "multirun").glob("*/*/train.log")
    postgres.stop()
    # Down until the trial's next call to the study (its next report or pruning question) finds it away and says so.
    said = poll(lambda: log.read_text(), lambda text: "the study's storage is unreachable" in text)
    assert "the study's storage is unreachable" in said
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


def test_an_interrupted_trial_is_recorded_as_failed_and_the_search_goes_on_when_run_again(tmp_path):
    # The basic launcher: the trial runs in the search's own process, whose trainer takes the signal (here the
    # stop flag raised at step 5, as SIGINT would); test_faults.py sends real signals to other launchers.
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path, callbacks=[StopAtStep(5)]) == 130
    journal = tmp_path / "multirun" / "lenet5_optuna" / "optuna.journal"
    trial, queued = load_study(journal).trials  # the interrupted trial, and its retry, waiting for the next start
    assert trial.state == State.FAIL and trial.system_attrs["fashionlab:failure"] == "interrupted"
    assert queued.state == State.WAITING  # its parameters are fixed: the same as the interrupted one's
    (run,) = run_dirs(tmp_path / "multirun")
    assert metrics(run)["status"] == "interrupted" and (run / "checkpoints" / "last.pt").is_file()
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path) == 0  # goes on
    first, retry = load_study(journal).trials
    assert (first.state, retry.state) == (State.FAIL, State.COMPLETE) and retry.params == first.params
    assert retry.user_attrs["fashionlab:continues"] == first.number  # queued again when it was interrupted
    (again,) = run_dirs(tmp_path / "multirun")  # its folder, from its checkpoint: step 5 was not trained twice
    assert again == run and metrics(run)["trial"] == retry.number and metrics(run)["status"] == "completed"
    assert f"resuming {run} at epoch 1, step 5" in (run / "train.log").read_text()
