"""Resume and reproducibility in this process: bad checkpoints refused, the same seed giving the same metrics,
resume= arguments. (SIGINT at an exact step is in test_job.py; SIGKILL and SIGTERM, with real processes, in
test_faults.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import main, metrics, run_dirs

FINAL = ("val/loss", "val/acc", "test/loss", "test/acc", "train/loss")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    assert main("experiment=smoke", tmp=tmp) == 0
    (run,) = run_dirs(tmp / "outputs")
    return run


def test_same_seed_same_metrics(tmp_path, finished):
    assert main("experiment=smoke", tmp=tmp_path) == 0
    (again,) = run_dirs(tmp_path / "outputs")
    a, b = metrics(finished), metrics(again)
    assert {k: a[k] for k in FINAL} == {k: b[k] for k in FINAL}


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.slow  # four resumes refused: in the full suite
@pytest.mark.parametrize(
    "damage,args,message",
    [
        ("truncate", (), "is truncated or corrupt"),
        ("garbage", (), "is truncated or corrupt"),
        (None, ("model.fc1_features=60",), "does not fit this model"),
        (None, ("model=mlp",), "holds a fashionlab.models.LeNet5 but this config builds a fashionlab.models.MLP"),
    ],
)
def test_a_bad_resume_says_why_and_changes_nothing(tmp_path, finished, capsys, damage, args, message):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    ckpt = run / "checkpoints" / "last.pt"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint" * 100)
    before = snapshot(run)
    assert main(f"resume={run}", *args, "trainer.max_epochs=2", tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    after = snapshot(run)
    after.pop("train.log", None), before.pop("train.log", None)  # the log says what happened
    assert after == before


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(f"resume={tmp_path}", tmp=tmp_path) == 2
    assert "is not a fashionlab run directory" in capsys.readouterr().err


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
