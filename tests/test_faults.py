"""What clusters do to a search, with real processes and a real small disk: SIGTERM to a search under joblib and
submitit (the trials checkpoint, the study has nothing RUNNING, no process of the search is left), a disk that
fills up under a run and under a search, and SIGKILL then resume."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
import torch

from conftest import (
    ROOT,
    SEARCH,
    SMOKE,
    command,
    environment,
    journal,
    load_study,
    main,
    metrics,
    poll,
    run_dirs,
)
from fashionlab.callbacks import Callback

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState


def alive_in_group(pgid: int) -> list[int]:
    """Processes of process group pgid that still run (zombies waiting to be reaped do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(stat.parent.name))
    return alive


def in_setup(run: Path) -> bool:
    """A trial's job that has started (its run_info.json) and not yet begun training (no TensorBoard file)."""
    return (run / "run_info.json").is_file() and not list(run.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "launcher, moment",
    [
        # SIGTERM to the whole process group (SLURM, systemd, a terminal's Ctrl-C send it so) while both jobs are
        # still being built, outside any training loop: the moment that once left trials RUNNING and printed
        # joblib's KeyboardInterrupt traceback. 150,000 synthetic images make that moment a second or two long.
        (("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data.num_train=150000"), "setup"),
        # SIGTERM to the sweeper alone, while both train: it forwards SIGINT to its jobs.
        (("hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2", "hydra.launcher.timeout_min=5"), "training"),
    ],
    ids=["joblib-group-in-setup", "submitit-sweeper-in-training"],
)
def test_sigterm_checkpoints_the_running_trials_records_them_interrupted_and_leaves_no_process(
    tmp_path, launcher, moment
):
    # 50 epochs and no pruning: both trials train until the signal (one that ended first, finished or pruned, would
    # not be interrupted, and its slot would start a third); the signal stops them long before.
    epochs = 50
    args = ("-m", *SMOKE, *SEARCH, "data.num_train=3000", *launcher, "hydra.sweeper.n_trials=4")
    args = (*args, "hydra/sweeper/pruner=none", f"trainer.max_epochs={epochs}", "logging.embedding=false")
    search = subprocess.Popen(
        command(*args, tmp=tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        start_new_session=True,
    )
    study_dir = tmp_path / "multirun" / "lenet5_optuna"
    if moment == "setup":  # both jobs started, neither training yet
        found = poll(lambda: [r for r in study_dir.glob("0*") if in_setup(r)], lambda runs: len(runs) == 2, 180)
    else:  # both trials are training (each has written its first checkpoint)
        found = poll(lambda: list(study_dir.glob("*/checkpoints/last.pt")), lambda ckpts: len(ckpts) == 2, 180)
    assert len(found) == 2 and search.poll() is None, search.stdout.read() if search.poll() is not None else found
    if moment == "setup":
        os.killpg(search.pid, signal.SIGTERM)
    else:
        search.send_signal(signal.SIGTERM)  # what SLURM, systemd, kill and container runtimes send
    out, _ = search.communicate(timeout=120)
    assert search.returncode == 130, out
    assert "the search stopped (signal 15)" in out and "Traceback" not in out

    everything = load_study(journal(tmp_path)).trials
    trials = [t for t in everything if t.state != State.WAITING]
    assert len(trials) == 2 and all(t.state == State.FAIL for t in trials)
    assert all(t.system_attrs["fashionlab:failure"] == "interrupted" for t in trials)
    queued = [t.user_attrs["fashionlab:continues"] for t in everything if t.state == State.WAITING]
    assert sorted(queued) == sorted(t.number for t in trials)  # the next start continues them
    a, b = (metrics(run) for run in run_dirs(study_dir))
    assert a["status"] == b["status"] == "interrupted" and {a["trial"], b["trial"]} == {t.number for t in trials}
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # they ran side by side
    if "joblib" in launcher[0]:  # the cores shared out between the trials that run at once
        assert a["threads"] == b["threads"] == max(1, (os.cpu_count() or 1) // 2)
    else:
        assert all(t.intermediate_values for t in trials)  # each job knew its trial and reported to the study
        assert list((study_dir / ".submitit").iterdir()), "the jobs ran through submitit"
    for run in run_dirs(study_dir):
        progress = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]
        assert progress["epoch"] < epochs and progress["batch"] > 0  # stopped inside an epoch, at its exact position
        if moment == "setup":  # the signal came before training: the first batch, then the checkpoint
            assert (progress["epoch"], progress["batch"]) == (0, 1)
    left = poll(lambda: alive_in_group(search.pid), lambda pids: not pids, 60)
    assert left == [], f"processes of the search still running: {left}"


class FillTheDisk(Callback):
    """After epoch 1 (its checkpoint written), fill the disk holding `folder` to the last byte."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_epoch_end(self, trainer, metrics) -> None:
        if trainer.state.epoch == 1:
            with open(self.folder / "ballast", "wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 4 MB (tmpfs), mounted for the test (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs takes root")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def no_temporary_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*.tmp")]


def test_a_run_whose_disk_fills_says_where_and_how_to_go_on_and_leaves_no_half_written_file(
    tmp_path, small_disk, capsys
):
    code = main(
        *SMOKE,
        "trainer.max_epochs=3",
        f"paths.output_dir={small_disk}",
        tmp=tmp_path,
        callbacks=[FillTheDisk(small_disk)],
    )
    err = capsys.readouterr().err
    assert code == 3, err
    (run,) = [p.parent for p in small_disk.glob("*/*/checkpoints")]
    assert f"The disk holding {run} is full (No space left on device" in err and "Traceback" not in err
    assert f"The last good checkpoint is {run}/checkpoints/last.pt" in err and f"resume={run}" in err
    assert no_temporary_files(small_disk) == []
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # whole, and the epoch it says
    assert state["progress"]["epoch"] == 1


def test_a_search_whose_disk_fills_fails_the_trial_and_stops_the_worker(tmp_path, small_disk, capsys):
    study = tmp_path / "study.journal"  # the study elsewhere: the trials' folders fill the small disk
    code = main(
        "-m",
        *SMOKE,
        *SEARCH,
        "trainer.max_epochs=3",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={small_disk}",
        f"hydra.sweeper.storage={study}",
        "hydra/sweeper/pruner=none",
        tmp=tmp_path,
        callbacks=[FillTheDisk(small_disk)],
    )
    err = capsys.readouterr().err
    assert code == 3 and "is full (No space left on device" in err and "Traceback" not in err
    (trial,) = load_study(study).trials  # the worker stopped: no second trial on the same full disk
    assert trial.state == State.FAIL and trial.system_attrs["fashionlab:failure"].startswith("disk full: ")
    assert no_temporary_files(small_disk) == []


def test_sigkill_then_resume_ends_as_an_uninterrupted_run(tmp_path):
    args = (*SMOKE, "data.num_train=3000", "trainer.max_epochs=2", "seed=7")
    assert main(*args, tmp=tmp_path / "reference") == 0
    (reference,) = run_dirs(tmp_path / "reference" / "outputs")
    proc = subprocess.Popen(
        command(*args, tmp=tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment()
    )
    ckpt = poll(lambda: list((tmp_path / "outputs").glob("*/*/checkpoints/last.pt")), bool, 120)
    proc.kill()  # as soon as the first checkpoint is there: wherever the run is then
    proc.wait()
    assert ckpt and proc.returncode == -signal.SIGKILL
    run = ckpt[0].parents[1]
    assert main(f"resume={run}", tmp=tmp_path) == 0
    final = ("val/loss", "val/acc", "test/loss", "test/acc", "train/loss")
    assert {k: metrics(run)[k] for k in final} == {k: metrics(reference)[k] for k in final}
    acc = __import__("conftest").events(run)
    for tag in acc.Tags()["scalars"]:  # one continuous curve: every step once, in order
        steps = [e.step for e in acc.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
