"""Faults with real processes: SIGKILL and SIGINT mid-run, resume, corrupt checkpoints, bad data; reproducibility."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import events, metrics, run_dirs, start, train

pytestmark = pytest.mark.slow

# Synthetic data big enough for an epoch to last about a second: time to kill a run inside epoch 2.
LONG = (
    "data=synthetic",
    "data.num_train=12000",
    "data.batch_size=100",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
    "logging.embedding_samples=20",
    "seed=7",
)
FINAL = ("val/loss", "val/acc", "test/loss", "test/acc")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("reference")
    train(*LONG, tmp=tmp)
    (run,) = run_dirs(tmp / "outputs")
    return metrics(run)


def wait_for_first_checkpoint(tmp: Path, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 90
    while time.time() < deadline:
        found = list((tmp / "outputs").glob("*/*/checkpoints/last.pt"))
        if found:
            return found[0].parents[1]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError("no checkpoint within 90 s")


def saved_progress(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]


def scalar_steps(run: Path) -> dict[str, list[int]]:
    acc = events(run)
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_sigkill_in_epoch_2_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
    proc = start(*LONG, tmp=tmp_path)
    run = wait_for_first_checkpoint(tmp_path, proc)
    time.sleep(0.4)
    proc.kill()
    proc.wait()
    assert saved_progress(run)["epoch"] == 1, "the kill should land inside epoch 2"
    train(f"resume={run}", tmp=tmp_path)
    resumed = metrics(run)
    assert resumed["status"] == "completed" and resumed["epochs"] == 2
    for key in FINAL:
        assert resumed[key] == reference[key], key
    for tag, steps in scalar_steps(run).items():  # one continuous curve: every step once, in order
        assert steps == sorted(set(steps)), tag
    assert scalar_steps(run)["val/acc"] == [115, 230]


def test_sigint_writes_a_checkpoint_prints_how_to_resume_and_exits_nonzero(tmp_path, reference):
    proc = start(*LONG, tmp=tmp_path)
    run = wait_for_first_checkpoint(tmp_path, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert f"python src/train.py resume={run}" in out
    progress = saved_progress(run)
    assert progress["epoch"] == 1 and 0 < progress["batch"] < 115  # the exact position inside epoch 2
    assert metrics(run)["status"] == "interrupted"
    train(f"resume={run}", tmp=tmp_path)
    for key in FINAL:  # same data order and weights from the batch it stopped at: the same result
        assert metrics(run)[key] == reference[key], key


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    train("experiment=smoke", tmp=tmp)
    (run,) = run_dirs(tmp / "outputs")
    return run


def test_same_seed_same_metrics(tmp_path, finished):
    train("experiment=smoke", tmp=tmp_path)
    (again,) = run_dirs(tmp_path / "outputs")
    a, b = metrics(finished), metrics(again)
    assert {k: a[k] for k in FINAL + ("train/loss",)} == {k: b[k] for k in FINAL + ("train/loss",)}


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "damage,args,message",
    [
        ("truncate", (), "is truncated or corrupt"),
        (None, ("model.fc1_features=60",), "does not fit this model"),
    ],
)
def test_a_bad_resume_says_why_and_changes_nothing(tmp_path, finished, damage, args, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    ckpt = run / "checkpoints" / "last.pt"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint" * 100)
    before = snapshot(run)
    proc = train(f"resume={run}", *args, tmp=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    after = snapshot(run)
    after.pop("train.log", None), before.pop("train.log", None)  # the log says what happened
    assert after == before


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    proc = train(f"resume={tmp_path}", tmp=tmp_path, check=False)
    assert proc.returncode == 2 and "is not a fashionlab run directory" in proc.stderr


def test_resume_keeps_flag_values_and_replaces_only_the_overrides_given_again(tmp_path):
    from fashionlab.hydra_setup import prepare_argv

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.05\n- seed=3\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    argv = prepare_argv(["train.py", f"resume={tmp_path}", "--cfg", "job", "-cn", "train", "seed=4"])
    assert argv[1:5] == ["--cfg", "job", "-cn", "train"]  # a flag's value is not taken for an override
    assert argv[5:7] == ["optimizer.lr=0.05", "seed=4"]
    assert f"hydra.run.dir='{tmp_path}'" in argv
