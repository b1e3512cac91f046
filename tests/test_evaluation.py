"""Evaluation a researcher can read: the test split given the chosen epoch's weights, per-class views in
TensorBoard, src/eval.py on a run, a checkpoint or a folder of runs, and the leaderboard's per-class line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import SMOKE, events, main, metrics, run_dirs
from fashionlab.data import Synthetic
from fashionlab.leaderboard.table import leaderboard
from fashionlab.metrics import class_tag
from fashionlab.runs import load_runs

CLASSES = Synthetic().classes  # the smoke runs' data: class 0 ... class 9
# Synthetic data reaches val/acc 1.0 in epoch 1 and keeps it: the first best epoch (1) is the one chosen, though
# the weights go on changing (the test loss of epoch 3's weights differs).
THREE_EPOCHS = (*SMOKE, "trainer.max_epochs=3", "logging.embedding=false")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("three")
    assert main(*THREE_EPOCHS, tmp=tmp) == 0
    (run,) = run_dirs(tmp / "outputs")
    return run


def evaluation(tmp: Path, *args: str) -> dict:
    assert main(*args, tmp=tmp, script="eval") == 0
    (folder,) = run_dirs(tmp / "outputs" / "eval")
    return json.loads((folder / "metrics.json").read_text())


def test_every_run_writes_the_evaluation_views(run):
    acc = events(run, images=0, histograms=0)
    assert set(acc.PluginTagToContent("pr_curves")) == {f"test/pr_curve/{class_tag(c)}" for c in CLASSES}
    assert {"test/confusion_matrix", "test/predictions"} <= set(acc.Tags()["images"])
    figure = acc.Images("test/confusion_matrix")[0]
    assert figure.width > 400 and figure.height > 400
    histograms = acc.Tags()["histograms"]
    assert {"weights/conv1.weight", "gradients/conv1.weight", "weights/fc3.bias"} <= set(histograms)
    assert [e.step for e in acc.Histograms("weights/conv1.weight")] == [47, 94, 141]  # after every epoch
    # Per-class accuracies, weighted by how many images each class has, are the overall accuracy.
    m = metrics(run)
    counts = m["test/confusion"]["counts"]
    per_class = [m[f"test/acc_per_class/{class_tag(c)}"] for c in CLASSES]
    weighted = sum(a * sum(row) for a, row in zip(per_class, counts)) / sum(map(sum, counts))
    assert weighted == pytest.approx(m["test/acc"], abs=1e-12)
    assert {f"test/acc_per_class/{class_tag(c)}" for c in CLASSES} <= set(acc.Tags()["scalars"])


def test_the_test_split_is_given_the_chosen_epochs_weights_and_eval_reproduces_it(tmp_path, run):
    m = metrics(run)
    assert m["best"]["epoch"] == m["tested_epoch"] == 1 and m["epochs"] == 3
    chosen = evaluation(tmp_path / "best", f"ckpt={run}")
    assert chosen["checkpoint"] == str(run / "checkpoints" / "best.pt") and chosen["epoch"] == 1
    assert (chosen["test/acc"], chosen["test/loss"]) == (m["test/acc"], m["test/loss"])  # exactly
    assert chosen["test/confusion"] == m["test/confusion"]
    last = evaluation(tmp_path / "last", f"ckpt={run}/checkpoints/last.pt")
    assert last["epoch"] == 3 and last["test/loss"] != m["test/loss"]  # not the weights the run tested
    val = evaluation(tmp_path / "val", f"ckpt={run}", "split=val")
    assert val["val/acc"] == m["best"]["value"]  # the value the objective chose it by


@pytest.mark.slow  # a grid of two runs, then an evaluation: in the full suite
def test_eval_of_a_folder_of_runs_takes_its_best_run(tmp_path):
    assert main("-m", *SMOKE, "optimizer.lr=0.05,0.0000001", "logging.embedding=false", tmp=tmp_path) == 0
    (grid,) = (tmp_path / "multirun").glob("*/*")
    best = max(run_dirs(grid), key=lambda r: metrics(r)["objective"]["value"])
    assert evaluation(tmp_path, f"ckpt={grid}")["run"] == str(best)
    board = leaderboard(load_runs(grid))
    assert "test/acc: the test split, once, with the weights of each run's best epoch" in board
    assert f"best run {metrics(best)['job']['num']}, test/acc per class (epoch 1): class 0 " in board


def test_a_bad_ckpt_is_one_paragraph_and_nothing_is_written(tmp_path, run, capsys):
    other, empty = tmp_path / "other", tmp_path / "empty"
    empty.mkdir()
    shutil.copytree(run, other)
    saved = OmegaConf.load(other / ".hydra" / "config.yaml")  # the run's config now builds another model
    saved.model = {"_target_": "fashionlab.models.MLP", "num_classes": 10, "hidden": [256, 128], "dropout": 0.0}
    OmegaConf.save(saved, other / ".hydra" / "config.yaml")
    cases = {
        str(tmp_path / "nowhere"): "there is no such file or folder",
        str(empty): "is not a run folder (no .hydra/config.yaml) and holds no completed run",
        str(other): "holds a fashionlab.models.LeNet5 but this config builds a fashionlab.models.MLP",
        f"{run} split=train": "split=train is not one of test, val",
    }
    for ckpt, message in cases.items():
        assert main(*f"ckpt={ckpt}".split(" "), tmp=tmp_path, script="eval") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # a run on an image folder, then evaluations
def test_eval_takes_overrides_of_the_runs_config_so_a_moved_data_root_can_be_given(tmp_path, capsys):
    from PIL import Image

    photos = tmp_path / "photos"
    for label, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for part, n in (("train", 24), ("test", 6)):
            for i in range(n):
                (photos / part / label).mkdir(parents=True, exist_ok=True)
                shade = tuple(max(0, c - 4 * i) for c in colour)
                Image.new("RGB", (18, 18), shade).save(photos / part / label / f"{i}.png")
    args = ("data=image_folder", f"data.root={photos}", "data.image_size=16", "trainer.max_epochs=1")
    assert main(*args, "trainer.progress_bar=false", "logging.embedding=false", tmp=tmp_path / "train") == 0
    (run,) = run_dirs(tmp_path / "train" / "outputs")
    m = metrics(run)
    moved = photos.rename(tmp_path / "moved")  # the data is elsewhere now, as on another machine
    capsys.readouterr()
    assert main(f"ckpt={run}", tmp=tmp_path / "a", script="eval") == 2
    err = capsys.readouterr().err
    assert f"data.root={photos} is not a folder" in err and "Traceback" not in err
    result = evaluation(tmp_path / "b", f"ckpt={run}", f"data.root={moved}", "trainer.device=cpu")
    assert (result["test/acc"], result["test/loss"]) == (m["test/acc"], m["test/loss"])  # the run's own figures
    assert result["overrides"] == [f"data.root={moved}", "trainer.device=cpu"]
    assert result["test/confusion"]["classes"] == ["blue", "red"]
    assert main(f"ckpt={run}", "data.rooot=x", tmp=tmp_path / "c", script="eval") == 2
    err = capsys.readouterr().err
    assert "data.rooot=x: the run's config" in err and "has no key data.rooot" in err
