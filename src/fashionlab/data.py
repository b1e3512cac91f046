"""Data: Fashion-MNIST (or synthetic look-alikes) held in memory as uint8 and batched for training.

The whole data set is 47 MB as uint8, so the fast path keeps it as one tensor on the training device,
shuffles by index each epoch and normalises per batch: no per-sample Python work. `in_memory=false`
keeps the classic per-sample path (PIL image -> ToTensor -> Normalize through a DataLoader) for data
that does not fit and for comparison. Both paths draw the same permutation, so they see the same order.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fashionlab.config import UserError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle Boot")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

Batch = tuple[torch.Tensor, torch.Tensor]
_LAST_SPLITS: dict[str, Any] = {}  # the splits this process made last (ImageData.setup)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1]: the tutorial's Normalize((0.5,), (0.5,))."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


class ImageData:
    """Train/validation/test splits of 28x28 uint8 images; subclasses say where the images come from."""

    classes = CLASSES

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 0,
        in_memory: bool = True,
        num_workers: int = 2,
    ):
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.in_memory = in_memory
        self.num_workers = num_workers
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return train images, train labels, test images, test labels (uint8 N x 28 x 28, int64 N)."""
        raise NotImplementedError

    def source(self) -> tuple:
        """What load() reads, to tell whether the splits this process made last are the same (see setup)."""
        return ()

    def setup(self, device: torch.device) -> None:
        """The three splits, on `device`. A process that runs trial after trial (a search under the basic or
        joblib launcher) reads and splits the same data each time: the last splits are kept and reused
        (read-only: batches are copies) while the source and the split settings are the same."""
        key = (type(self).__name__, *self.source(), self.val_size, self.split_seed)
        if _LAST_SPLITS.get("key") != key:
            _LAST_SPLITS.clear()
            _LAST_SPLITS.update(key=key, splits=self._split())
        self.splits = dict(_LAST_SPLITS["splits"])
        if self.in_memory:
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}
        self.device = device

    def _split(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        train_x, train_y, test_x, test_y = self.load()
        if self.val_size >= len(train_x):
            raise UserError(
                f"data.val_size={self.val_size} leaves no training images: the training set has "
                f"{len(train_x)} images. Use a smaller data.val_size, e.g. data.val_size={len(train_x) // 10}."
            )
        # The split depends on split_seed alone, so runs with different seeds are judged on the same images.
        perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.split_seed))
        val, train = perm[: self.val_size], perm[self.val_size :]
        return {
            "train": (train_x[train], train_y[train]),
            "val": (train_x[val], train_y[val]),
            "test": (test_x, test_y),
        }

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def steps_per_epoch(self) -> int:
        return -(-self.size("train") // self.batch_size)

    def train_batches(self, order: torch.Generator, skip: int = 0) -> Iterator[Batch]:
        """One epoch in the order drawn from `order`, starting at batch `skip` (to resume mid-epoch)."""
        images, labels = self.splits["train"]
        perm = torch.randperm(len(labels), generator=order)[skip * self.batch_size :]
        if len(perm) == 0:  # stopped after the epoch's last batch; split() would still give one empty batch
            return
        if not self.in_memory:
            yield from self._per_sample(images, labels, perm, self.batch_size)
            return
        perm = perm.to(images.device)
        for idx in perm.split(self.batch_size):
            yield normalize(images[idx]), labels[idx]

    def eval_batches(self, split: str) -> Iterator[Batch]:
        images, labels = self.splits[split]
        if not self.in_memory:
            yield from self._per_sample(images, labels, torch.arange(len(labels)), self.eval_batch_size)
            return
        for x, y in zip(images.split(self.eval_batch_size), labels.split(self.eval_batch_size)):
            yield normalize(x), y

    def _per_sample(
        self, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, batch_size: int
    ) -> Iterator[Batch]:
        dataset = torch.utils.data.Subset(PerSampleDataset(images, labels), order.tolist())
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=self.num_workers
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class PerSampleDataset(torch.utils.data.Dataset):
    """What torchvision's FashionMNIST does per item: uint8 array -> PIL image -> ToTensor -> Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms  # torchvision takes about 3 s to import: only on this path

        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image  # only on this path (torchvision's own per-sample path)

        return self.transform(Image.fromarray(self.images[i].numpy(), mode="L")), int(self.labels[i])


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST format): big-endian magic (0, 0, type, ndim), ndim sizes, then the uint8 data.

    Read here rather than with torchvision's reader: importing torchvision costs about 3 s per process.
    """
    raw = path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = raw[4 + 4 * ndim :]
    if len(data) != math.prod(shape):
        raise ValueError(f"{len(data)} bytes of data for a shape of {shape}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(shape)


class FashionMNIST(ImageData):
    """Fashion-MNIST read from `root`/FashionMNIST/raw (the files torchvision's FashionMNIST downloads).

    Where those files are missing, they come from the Debian package `dataset-fashion-mnist`
    (`debian_dir`), else from torchvision's download.
    """

    def __init__(self, root: str = "data", debian_dir: str = DEBIAN_DIR, **kwargs: Any):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.debian_dir = Path(debian_dir)

    def source(self) -> tuple:
        raw = (self.root / "FashionMNIST" / "raw").resolve()
        stats = [(raw / name).stat() if (raw / name).exists() else None for name in FILES]
        return (str(raw), *[(s.st_size, s.st_mtime_ns) if s else None for s in stats])

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raw = self.root / "FashionMNIST" / "raw"
        if not all((raw / name).exists() for name in FILES):
            self._fetch(raw)
        tensors = []
        for name in FILES:
            try:
                tensors.append(read_idx(raw / name))
            except (OSError, ValueError) as e:
                raise UserError(
                    f"The data file {raw / name} is truncated or corrupt ({type(e).__name__}: {e}). "
                    f"Delete it (or the folder {raw}) and run again to fetch a fresh copy."
                ) from None
        train_x, train_y, test_x, test_y = tensors
        if len(train_x) != len(train_y) or len(test_x) != len(test_y):
            raise UserError(
                f"The image and label files in {raw} disagree on the number of examples "
                f"({len(train_x)}/{len(train_y)} train, {len(test_x)}/{len(test_y)} test): "
                f"delete {raw} and run again to fetch a fresh copy."
            )
        return train_x, train_y.long(), test_x, test_y.long()

    def _fetch(self, raw: Path) -> None:
        try:
            raw.mkdir(parents=True, exist_ok=True)
            probe = raw / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise UserError(
                f"data.root={self.root} is not writable ({e.strerror}: {e.filename}), and the "
                f"Fashion-MNIST files must be written there. Pass a writable folder, e.g. "
                f"data.root=$HOME/data."
            ) from None
        if all((self.debian_dir / f"{name}.gz").exists() for name in FILES):
            for name in FILES:  # gunzip to a temporary name, then rename: a kill leaves no half file
                tmp = raw / f"{name}.tmp"
                with gzip.open(self.debian_dir / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp, raw / name)
            return
        from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST  # 3 s: only to download

        try:
            TorchvisionFashionMNIST(str(self.root), train=True, download=True)
        except Exception as e:  # noqa: BLE001 - whatever the download raised, the fix is the same
            raise UserError(
                f"Fashion-MNIST is not in {raw}, not in {self.debian_dir}, and torchvision could not download it "
                f"({type(e).__name__}: {e}). Get it one of these ways: `apt-get install dataset-fashion-mnist` "
                f"(Debian/Ubuntu; `make data` does this), a machine with internet (torchvision downloads it), or "
                f"copy the four *-ubyte files into {raw} (or point data.root=... at a folder holding "
                f"FashionMNIST/raw). To try the pipeline without it: data=synthetic."
            ) from None


class Synthetic(ImageData):
    """Random images of Fashion-MNIST's shape, one noisy template per class: learnable, offline, instant."""

    def __init__(self, num_train: int = 2000, num_test: int = 500, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_train, self.num_test, self.seed = num_train, num_test, seed

    def source(self) -> tuple:
        return self.num_train, self.num_test, self.seed

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        templates = torch.rand(len(CLASSES), 28, 28, generator=g) * 255

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            labels = torch.randint(len(CLASSES), (n,), generator=g)
            noise = torch.randn(n, 28, 28, generator=g) * 30
            return (templates[labels] + noise).clamp(0, 255).to(torch.uint8), labels

        return (*draw(self.num_train), *draw(self.num_test))
