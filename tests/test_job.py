"""The job in this process on tiny synthetic data: a run, resumes, an interrupt at an exact step, a two-trial
search (make test-fast), and the faults that need no second process: bad numbers, a study already complete, torn
files (make test)."""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path
from unittest import mock

import optuna
import pytest
import torch
import yaml

from conftest import ROOT, SEARCH, SMOKE, StopAtStep, journal, load_study, main, metrics, run_dirs

State = optuna.trial.TrialState
FINAL = ("val/loss", "val/acc", "test/loss", "test/acc")


def only_run(root: Path) -> Path:
    (run,) = run_dirs(root)
    return run


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run folder but its log, which says what happened."""
    return {
        str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != "train.log"
    }


def test_a_run_writes_its_records_and_resuming_it_when_complete_changes_nothing(tmp_path):
    assert main(*SMOKE, tmp=tmp_path) == 0
    run = only_run(tmp_path / "outputs")
    m = metrics(run)
    assert m["status"] == "completed" and m["epochs"] == 1 and m["objective"]["value"] == m["best"]["value"]
    before = snapshot(run)
    assert main(f"resume={run}", tmp=tmp_path) == 0
    assert snapshot(run) == before
    assert "is complete (1 of 1 epochs, tested): nothing to do" in (run / "train.log").read_text()
    assert main(f"resume={run}", "trainer.max_epochs=2", tmp=tmp_path) == 0  # longer: it goes on
    assert metrics(run)["epochs"] == 2 and metrics(run)["status"] == "completed"


@pytest.mark.parametrize(
    "step, where",
    [
        (60, (1, 13)),  # in the middle of epoch 2
        pytest.param(47, (0, 47), marks=pytest.mark.slow),  # after the last batch of epoch 1, before its validation
    ],
)
def test_an_interrupt_at_a_step_checkpoints_there_and_the_resumed_run_ends_as_if_never_stopped(tmp_path, step, where):
    args = (*SMOKE, "trainer.max_epochs=2", "seed=3")  # 1,500 training images in batches of 32: 47 steps an epoch
    assert main(*args, tmp=tmp_path / "reference") == 0
    reference = metrics(only_run(tmp_path / "reference" / "outputs"))

    assert main(*args, tmp=tmp_path, callbacks=[StopAtStep(step)]) == 130
    run = only_run(tmp_path / "outputs")
    progress = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert (progress["step"], progress["epoch"], progress["batch"]) == (step, *where)
    assert metrics(run)["status"] == "interrupted"
    assert main(f"resume={run}", tmp=tmp_path) == 0
    assert {k: metrics(run)[k] for k in FINAL} == {k: reference[k] for k in FINAL}


def test_a_two_trial_search_and_a_late_worker_that_finds_the_study_complete(tmp_path):
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=2", tmp=tmp_path) == 0
    study = load_study(journal(tmp_path))
    assert [t.state for t in study.trials] == [State.COMPLETE] * 2
    assert sorted(metrics(r)["trial"] for r in run_dirs(tmp_path / "multirun")) == [0, 1]
    # A worker started later elsewhere, with a folder of its own: nothing to start, and it says what is best.
    late = tmp_path / "late"
    args = (f"hydra.sweeper.storage={journal(tmp_path)}", f"hydra.sweep.dir={late}")
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=2", *args, tmp=tmp_path) == 0
    assert yaml.safe_load((late / "optimization_results.yaml").read_text())["best_value"] == study.best_value
    assert len(load_study(journal(tmp_path)).trials) == 2


@pytest.mark.parametrize(
    "override,message",
    [
        ("hydra.sweeper.grace_period=-1", "hydra.sweeper.grace_period=-1 must be at least 1"),
        ("hydra.sweeper.heartbeat_interval=0", "hydra.sweeper.heartbeat_interval=0 must be at least 1"),
        ("hydra.sweeper.grace_period=30", "grace_period=30 must be longer than hydra.sweeper.heartbeat_interval=30"),
        ("hydra.sweeper.max_failure_rate=nan", "max_failure_rate=nan must be a finite number"),
        ("hydra.sweeper.storage_timeout=inf", "storage_timeout=inf must be a finite number"),
    ],
)
def test_the_sweepers_numbers_are_checked_before_anything_starts(tmp_path, capsys, override, message):
    assert main("-m", *SMOKE, *SEARCH, override, tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not journal(tmp_path).exists()


@pytest.mark.slow  # torn files: in the full suite
def test_a_torn_last_journal_record_is_dropped_once_and_the_search_goes_on(tmp_path, capsys):
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path) == 0
    path = journal(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code":5,"worker_id":"w","trial_id":0,"par')  # an append that did not finish
    capsys.readouterr()
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=2", tmp=tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("ended in an incomplete record (46 bytes") == 1
    assert path.read_bytes().startswith(whole)  # every complete record is kept
    assert [t.state for t in load_study(path).trials] == [State.COMPLETE] * 2


@pytest.mark.slow  # torn files: in the full suite
def test_a_corrupt_journal_record_in_the_middle_is_one_message_and_the_file_is_left_as_it_was(tmp_path, capsys):
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=1", tmp=tmp_path) == 0
    path = journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"  # a damaged record with others after it
    path.write_bytes(b"".join(lines))
    damaged = path.read_bytes()
    assert main("-m", *SMOKE, *SEARCH, "hydra.sweeper.n_trials=2", tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert f"The study's journal {path} has a corrupt record at line 3 of {len(lines)}" in err
    assert "Traceback" not in err and path.read_bytes() == damaged


@pytest.mark.slow  # torn files: in the full suite
def test_compare_skips_a_torn_metrics_json_with_one_warning(tmp_path, capsys):
    assert main(*SMOKE, "logging.embedding=false", tmp=tmp_path) == 0
    sweep = tmp_path / "copies"  # two copies of a real run's folder: one of them torn, as a copy in progress is
    torn, kept = sweep / "a", sweep / "b"
    for copy in (torn, kept):
        shutil.copytree(only_run(tmp_path / "outputs"), copy)
    (torn / "metrics.json").write_text((torn / "metrics.json").read_text()[:50])  # a copy in progress
    capsys.readouterr()
    with mock.patch.object(sys, "argv", ["compare.py", str(sweep)]), pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "src" / "compare.py"), run_name="__main__")
    out, err = capsys.readouterr()
    assert e.value.code == 0 and "\n1 runs; plot:" in out
    assert err.strip().splitlines() == [
        f"compare: skipped {torn / 'metrics.json'}: not valid JSON (a copy in progress, or a full disk?)"
    ]
