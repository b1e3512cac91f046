"""Data sets beyond Fashion-MNIST, each read from small files the test writes in its own format (MNIST's IDX, CIFAR-10's
pickled batches, a folder of PNG and JPEG images), scikit-learn's digits, synthetic images of any shape, per-channel
normalisation, and augmentation of whole batches."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SMOKE, main
from fashionlab.augment import CropFlip
from fashionlab.config import UserError
from fashionlab.data import CIFAR10, MNIST, Digits, ImageFolder, Synthetic
from fashionlab.data import base as data_base

CPU = torch.device("cpu")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def fresh_splits():
    """Each test reads its own files: not the splits an earlier test of this process kept."""
    data_base._LAST_SPLITS.clear()


def write_idx(raw: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def test_mnist_reads_its_idx_files_and_normalises_with_its_own_mean_and_std(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(tmp_path / "MNIST" / "raw", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), labels, prefix)
    data = MNIST(root=str(tmp_path), val_size=10, batch_size=25)
    data.setup(CPU)
    assert data.shape == (1, 28, 28) and data.classes == tuple("0123456789")
    assert (data.size("train"), data.size("val"), data.size("test")) == (50, 10, 20)
    x, _ = next(data.eval_batches("test"))
    raw = data.splits["test"][0].float() / 255
    assert torch.allclose(x, (raw - 0.1307) / 0.3081, atol=1e-5)


def cifar_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """A batch as CIFAR-10's python version has it: a pickled dict of a (N, 3072) uint8 array (R, then G, then B
    planes of each 32x32 image) and a list of labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": images, b"filenames": [b"a.png"] * n}, f, 2)
    return images, labels


def test_cifar10_reads_its_pickled_batches_with_classes_from_its_meta_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [cifar_batch(folder / f"data_batch_{i}", 8, i) for i in range(1, 6)]
    test_images, test_labels = cifar_batch(folder / "test_batch", 6, 9)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}, f, 2)
    data = CIFAR10(root=str(tmp_path), val_size=4)
    data.setup(CPU)
    assert data.shape == (3, 32, 32) and list(data.classes) == CIFAR_CLASSES
    assert (data.size("train"), data.size("val"), data.size("test")) == (36, 4, 6)
    x, y = data.splits["test"]
    assert y.tolist() == test_labels
    assert torch.equal(x[2, 1], torch.from_numpy(test_images[2, 1024:2048].reshape(32, 32)))  # image 2's green plane
    everything = torch.cat([data.splits["train"][1], data.splits["val"][1]]).sort().values
    assert everything.tolist() == sorted(label for _, labels in batches for label in labels)


class Payload:
    """What a malicious pickle does: call a function of its choosing when it is loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_cifar10_file_that_asks_to_run_code_is_refused_and_nothing_runs(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", 4, i)
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}, 2))
    with pytest.raises(
        UserError, match=r"test_batch cannot be read \(UnpicklingError: .* is not something a CIFAR-10 batch holds"
    ):
        CIFAR10(root=str(tmp_path), val_size=2).setup(CPU)
    assert not marker.exists()


def write_image(path: Path, colour: tuple[int, int, int] | int, size: tuple[int, int] = (20, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if isinstance(colour, int) else "RGB"
    Image.new(mode, size, colour).save(path)


def image_folder(root: Path, split: bool = True) -> Path:
    """cat/ in red PNGs, dog/ in grey JPEGs; train/ and test/ if `split`."""
    for part, n in (("train", 6), ("test", 2)) if split else (("", 8),):
        for i in range(n):
            write_image(root / part / "cat" / f"{i}.png", (200, 10, 10))
            write_image(root / part / "dog" / f"{i}.jpg", 90)
    return root


def test_an_image_folder_is_read_resized_made_rgb_and_cached_so_the_next_run_decodes_nothing(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "pets")
    data = ImageFolder(root=str(root), image_size=16, val_size=2, batch_size=4)
    data.setup(CPU)
    assert data.shape == (3, 16, 16) and data.classes == ("cat", "dog")  # colour in one image: RGB
    assert (data.size("train"), data.size("val"), data.size("test")) == (10, 2, 4)
    x, y = data.splits["test"]
    cat = x[y == 0][0]
    assert cat[:, 8, 8].tolist() == [200, 10, 10] and x[y == 1][0][:, 8, 8].tolist() == [90, 90, 90]
    (cache,) = (root / ".fashionlab-cache").glob("images-*.pt")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ImageFolder, "_decode", no_decoding)
    data_base._LAST_SPLITS.clear()  # a new process
    again = ImageFolder(root=str(root), image_size=16, val_size=2, batch_size=4)
    again.setup(CPU)
    assert torch.equal(again.splits["test"][0], x) and again.classes == ("cat", "dog")
    write_image(root / "train" / "cat" / "new.png", (0, 0, 255))  # a new file: decoded again, another cache
    data_base._LAST_SPLITS.clear()
    with pytest.raises(AssertionError, match="decoded again"):
        ImageFolder(root=str(root), image_size=16, val_size=2).setup(CPU)


def test_without_a_test_folder_a_test_split_is_held_out_by_a_seed_of_its_own(tmp_path):
    root = image_folder(tmp_path / "pets", split=False)
    a = ImageFolder(root=str(root), image_size=8, channels=1, test_size=0.25, val_size=2)
    a.setup(CPU)
    assert a.shape == (1, 8, 8) and a.size("test") == 4 and a.size("train") + a.size("val") == 12
    data_base._LAST_SPLITS.clear()
    b = ImageFolder(root=str(root), image_size=8, channels=1, test_size=0.25, val_size=2, test_seed=1)
    b.setup(CPU)
    assert not torch.equal(a.splits["test"][1], b.splits["test"][1]) or a.size("test") == 0


@pytest.mark.parametrize(
    "damage, named, says",
    [
        ("broken", "train/dog/broken.png", "is not an image PIL can read"),
        ("empty", "train/bird", "holds no PNG or JPEG image"),
        ("none", "train", "holds no class folders"),
    ],
)
def test_a_bad_image_folder_is_one_paragraph_naming_the_path(tmp_path, damage, named, says):
    root = image_folder(tmp_path / "pets")
    if damage == "broken":
        (root / "train" / "dog" / "broken.png").write_text("not a picture")
    elif damage == "empty":
        (root / "train" / "bird").mkdir()
    else:
        for p in sorted((root / "train").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    with pytest.raises(UserError) as e:
        ImageFolder(root=str(root), image_size=8).setup(CPU)
    assert f"{root / named}" in str(e.value) and says in str(e.value) and "\n" not in str(e.value)


def test_digits_are_scikit_learns_real_images():
    data = Digits(val_size=180)
    data.setup(CPU)
    assert data.shape == (1, 8, 8) and data.classes == tuple("0123456789")
    assert (data.size("train"), data.size("val"), data.size("test")) == (1257, 180, 360)
    x = data.splits["train"][0]
    assert x.dtype == torch.uint8 and x.max() == 255 and len(x.unique()) == 17  # 16 grey levels, and white
    batch, _ = next(data.eval_batches("val"))
    assert abs(float(batch.mean())) < 0.05  # measured on the training split: about zero after normalising


def test_synthetic_images_take_any_shape_and_normalisation_is_per_channel():
    data = Synthetic(
        num_train=40,
        num_test=10,
        val_size=10,
        channels=3,
        image_size=12,
        num_classes=4,
        mean=[0.2, 0.4, 0.6],
        std=[0.5, 0.25, 0.1],
    )
    data.setup(CPU)
    assert data.shape == (3, 12, 12) and len(data.classes) == 4
    x, _ = next(data.eval_batches("test"))
    raw = data.splits["test"][0].float() / 255
    for c, (m, s) in enumerate(zip([0.2, 0.4, 0.6], [0.5, 0.25, 0.1])):
        assert torch.allclose(x[:, c], (raw[:, c] - m) / s, atol=1e-5)
    with pytest.raises(UserError, match=r"data.mean=\[0.1, 0.2\] has 2 values, but the images have 3 channels"):
        Synthetic(num_train=40, channels=3, val_size=10, mean=[0.1, 0.2]).setup(CPU)


def test_crop_flip_takes_a_window_of_the_padded_image_or_its_mirror_and_leaves_evaluation_alone():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).reshape(2, 3, 6, 6)
    out = CropFlip(padding=2, flip=0.5)(x.repeat(20, 1, 1, 1))
    padded = torch.nn.functional.pad(x.repeat(20, 1, 1, 1), (2, 2, 2, 2))
    windows = [padded[:, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
    for k in range(len(out)):
        candidates = [w[k] for w in windows] + [w[k].flip(2) for w in windows]
        assert any(torch.equal(out[k], c) for c in candidates)
    assert out.dtype == torch.uint8 and not all(torch.equal(out[k], x[k % 2]) for k in range(len(out)))
    data = Synthetic(num_train=64, num_test=16, val_size=16, augment=CropFlip(padding=4))
    data.setup(CPU)
    plain = Synthetic(num_train=64, num_test=16, val_size=16)
    plain.setup(CPU)
    for split in ("val", "test"):  # never augmented
        assert all(torch.equal(a[0], b[0]) for a, b in zip(data.eval_batches(split), plain.eval_batches(split)))
    augmented = next(data.train_batches(torch.Generator().manual_seed(1)))[0]
    assert not torch.equal(augmented, next(plain.train_batches(torch.Generator().manual_seed(1)))[0])


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ("model.padding=0",),
            "model=lenet5, data=digits: the model cannot take the data's 1x8x8 images of 10 classes",
        ),
        (("model.in_shape=[1,28,28]",), "model.in_shape=[1, 28, 28] does not match the data, which holds 1x8x8 images"),
        (("model=resnet", "model.depth=21"), "model.depth=21: a CIFAR ResNet has 6n + 2 layers"),
    ],
)
def test_a_model_that_cannot_take_the_data_is_one_paragraph_before_training(tmp_path, capsys, args, says):
    assert main("experiment=digits", *args, tmp=tmp_path) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.rglob("checkpoints"))


@pytest.mark.slow  # two runs
def test_label_smoothing_is_a_key_of_the_training_loss_and_not_of_the_validation_loss(tmp_path):
    losses = {}
    for smoothing in (0.0, 0.3):
        args = (*SMOKE, f"loss.label_smoothing={smoothing}", "logging.embedding=false", "trainer.max_epochs=2")
        assert main(*args, tmp=tmp_path / str(smoothing)) == 0
        (run,) = (tmp_path / str(smoothing)).rglob("metrics.json")
        m = json.loads(run.read_text())
        losses[smoothing] = (m["train/loss"], m["val/loss"], m["val/acc"])
    # Smoothing keeps the training loss away from 0; validation is plain cross entropy, low for a good model.
    assert losses[0.3][0] > 5 * losses[0.0][0] and losses[0.3][0] > 0.3
    assert losses[0.3][2] > 0.9 and losses[0.3][1] < losses[0.3][0]


@pytest.mark.slow  # 20 epochs of real data
def test_digits_train_end_to_end_to_a_real_accuracy(tmp_path):
    """scikit-learn's real digits, experiment=digits, LeNet-5 with its padding for 8x8 images: above 0.95."""
    assert main("experiment=digits", "logging.embedding=false", tmp=tmp_path) == 0
    (run,) = (tmp_path / "outputs").rglob("metrics.json")
    m = json.loads(run.read_text())
    assert m["status"] == "completed" and m["test/acc"] > 0.95, m["test/acc"]
    assert m["test/confusion"]["classes"] == list("0123456789") and sum(map(sum, m["test/confusion"]["counts"])) == 360


@pytest.mark.slow  # a search
def test_the_search_preset_runs_on_any_data_set(tmp_path):
    args = ("-m", "hparams_search=lenet5_optuna", "data=digits", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1")
    assert main(*args, "trainer.progress_bar=false", "logging.embedding=false", tmp=tmp_path) == 0
    runs = [json.loads(p.read_text()) for p in (tmp_path / "multirun" / "lenet5_optuna").rglob("metrics.json")]
    assert sorted(r["trial"] for r in runs) == [0, 1] and all(r["status"] == "completed" for r in runs)
    assert all(r["test/confusion"]["classes"] == list("0123456789") for r in runs)
