"""One real run on Fashion-MNIST-format IDX files, and a colour run: files written, TensorBoard views read back and
served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FILES, events, get, main, metrics, poll, run_dirs, session_groups, tensorboard

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, idx_dir) -> Path:
    """`python src/train.py` (in this process) with data.root empty: the IDX files come from the 'Debian' folder."""
    tmp = tmp_path_factory.mktemp("run")
    assert (
        main(
            f"data.root={tmp}/data",
            f"data.debian_dir={idx_dir}",
            "data.val_size=100",
            "data.batch_size=50",
            "trainer.max_epochs=2",
            "trainer.progress_bar=false",
            "trainer.val_every_n_steps=5",
            "logging.embedding_samples=40",
            tmp=tmp,
        )
        == 0
    )
    (run_dir,) = run_dirs(tmp / "outputs")
    return run_dir


def test_data_is_unpacked_into_data_root(run):
    raw = run.parents[2] / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES)


def test_run_directory_holds_metrics_config_and_checkpoints(run):
    m = metrics(run)
    assert m["status"] == "completed" and m["epochs"] == 2
    assert m["steps"] == 2 * 10  # 500 training images in batches of 50
    for key in ("train/loss", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert isinstance(m[key], float), key
    curve = {int(e): v for e, v in m["objective"].pop("curve").items()}
    assert m["objective"] == {"metric": "val/acc", "mode": "max", "value": m["best"]["value"], "objectives": None}
    assert max(curve.values()) == m["best"]["value"] and sorted(curve) == list(range(1, m["epochs"] + 1))
    assert m["best"]["value"] >= m["val/acc"]
    assert m["images_per_s"] > 0 and m["wall_time_s"] >= m["train_time_s"] > 0
    # What the run chose: the group choices and the overrides, not where it wrote or how it logged.
    assert m["hparams"] == {
        "data": "fashion_mnist",
        "model": "lenet5",
        "augment": "none",
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "scheduler": "onecycle",
        "trainer": "default",
        "data.val_size": 100,
        "data.batch_size": 50,
        "trainer.max_epochs": 2,
        "trainer.val_every_n_steps": 5,
    }
    assert (run / ".hydra" / "config.yaml").is_file()
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    info = json.loads((run / "run_info.json").read_text())
    assert info["torch"] and info["git_commit"]


def test_events_hold_every_view(run):
    acc = events(run, images=0)
    tags = acc.Tags()
    assert sorted(tags["images"]) == ["test/confusion_matrix", "test/predictions", "train/samples"]
    image = acc.Images("train/samples")[0]
    assert image.width > 200 and image.height > 50  # a grid of 32 images, 8 per row
    scalars = set(tags["scalars"])
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc", "test/loss", "test/acc"} <= scalars
    val_steps = [e.step for e in acc.Scalars("val/loss")]
    assert val_steps == [5, 10, 15, 20]  # every 5 steps, and each epoch's end (10, 20)
    assert [e.step for e in acc.Scalars("test/acc")] == [20]
    assert acc.Graph() is not None and "conv1" in str(acc.Graph())
    # The HPARAMS row, written at the end with the status; no experiment summary (TensorBoard builds one).
    assert set(acc.PluginTagToContent("hparams")) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert set(acc.PluginTagToContent("custom_scalars")) == {"custom_scalars__config__"}
    assert set(acc.PluginTagToContent("text")) == {"run/config/text_summary", "run/environment/text_summary"}


def test_projector_has_pixels_and_features_with_labels_and_thumbnails(run):
    config = (run / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 2
    for tag, dim in (("images", 784), ("features", 84)):
        (folder,) = run.glob(f"*/{tag}")
        rows = (folder / "tensors.tsv").read_text().strip().splitlines()
        assert len(rows) == 40 and len(rows[0].split("\t")) == dim
        labels = (folder / "metadata.tsv").read_text().split()
        assert len(labels) >= 40 and (folder / "sprite.png").stat().st_size > 1000


WANTED = {
    "scalars",
    "images",
    "graphs",
    "projector",
    "hparams",
    "custom_scalars",
    "text",
    "pr_curves",
    "histograms",
    "distributions",
}


def test_tensorboard_serves_every_view(run):
    """What a user sees: a real `tensorboard` over the outputs folder lists and returns each view."""
    logdir = run.parents[1]
    with tensorboard(logdir) as base:
        listing = poll(
            lambda: get(f"{base}/data/plugins_listing"),
            lambda plugins: {k for k, v in plugins.items() if v["enabled"]} >= WANTED,
        )
        assert {k for k, v in listing.items() if v["enabled"]} >= WANTED, listing
        name = str(run.relative_to(logdir))
        assert get(f"{base}/data/runs") == [name]
        val = get(f"{base}/data/plugin/scalars/scalars?run={name}&tag=val/acc")
        assert [row[1] for row in val] == [5, 10, 15, 20]
        assert get(f"{base}/data/plugin/images/images?run={name}&tag=train/samples")
        projector = get(f"{base}/data/plugin/projector/info?run={name}")
        assert sorted(e["tensorName"].split(":")[0] for e in projector["embeddings"]) == ["features", "images"]
        (group,) = poll(lambda: session_groups(base), lambda groups: len(groups) == 1)
        assert group["hparams"]["data.batch_size"] == 50 and group["hparams"]["status"] == "completed"
        values = {v["name"]["tag"]: v["value"] for v in group["metricValues"]}
        assert values["test/acc"] == pytest.approx(metrics(run)["test/acc"])


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory) -> Path:
    """A colour run: CIFAR-shaped synthetic images (3x32x32, 4 classes), a ResNet, crop-and-flip augmentation."""
    tmp = tmp_path_factory.mktemp("rgb")
    args = ("experiment=smoke", "data.channels=3", "data.image_size=32", "data.num_classes=4", "data.num_train=600")
    args += ("model=resnet", "model.depth=8", "augment=crop_flip", "logging.embedding_samples=30")
    assert main(*args, tmp=tmp) == 0
    (run_dir,) = run_dirs(tmp / "outputs")
    return run_dir


def test_a_colour_run_writes_every_view_in_colour_with_the_data_sets_classes(rgb_run):
    from io import BytesIO

    from PIL import Image

    acc = events(rgb_run, images=0, histograms=0)
    classes = [f"class {i}" for i in range(4)]
    tags = acc.Tags()
    assert sorted(tags["images"]) == ["test/confusion_matrix", "test/predictions", "train/samples"]
    samples = Image.open(BytesIO(acc.Images("train/samples")[0].encoded_image_string))
    assert samples.mode == "RGB" and samples.size == (8 * 34 + 2, 4 * 34 + 2)  # 32 images of 32x32, 8 a row
    predictions = Image.open(BytesIO(acc.Images("test/predictions")[-1].encoded_image_string)).convert("RGB")
    assert len(set(predictions.getdata())) > 100  # the test images in their colours, not gray
    assert set(acc.PluginTagToContent("pr_curves")) == {f"test/pr_curve/{c.replace('/', '-')}" for c in classes}
    assert {f"test/acc_per_class/{c}" for c in classes} <= set(tags["scalars"])
    assert "weights/stem.0.weight" in tags["histograms"] and acc.Graph() is not None
    for tag, dim in (("images", 3 * 32 * 32), ("features", 64)):  # the pixels, and ResNet-8's 4 x 16 features
        (folder,) = rgb_run.glob(f"*/{tag}")
        rows = (folder / "tensors.tsv").read_text().strip().splitlines()
        assert len(rows) == 30 and len(rows[0].split("\t")) == dim
        assert Image.open(folder / "sprite.png").mode in ("RGB", "RGBA")
    m = metrics(rgb_run)
    assert m["test/confusion"]["classes"] == classes and m["status"] == "completed"
