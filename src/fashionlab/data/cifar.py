"""CIFAR-10: 50,000 + 10,000 RGB 32x32 images of 10 classes, read from `root`/cifar-10-batches-py (the files
torchvision's CIFAR10 downloads, or a copy a user already has), else downloaded by torchvision.

The batches are Python pickles. A pickle can run any code it names, so they are read with an unpickler that builds
only what these files hold (dicts, lists, bytes, numpy arrays): a file that asks for anything else is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashionlab.config import UserError
from fashionlab.data.base import ImageData, Loaded, stamp

FOLDER = "cifar-10-batches-py"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _Batches(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not something a CIFAR-10 batch holds")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict:
    """One pickled batch: {b'data': (N, 3072) uint8, b'labels': [...]} (or batches.meta's b'label_names')."""
    with open(path, "rb") as f:
        batch = _Batches(f, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError("not a dict of arrays")
    return batch


class CIFAR10(ImageData):
    """CIFAR-10, normalised by its training set's per-channel mean and standard deviation."""

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    default_mean = (0.4914, 0.4822, 0.4465)
    default_std = (0.2470, 0.2435, 0.2616)

    def __init__(self, root: str = "data", **kwargs: Any):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def source(self) -> tuple:
        files = [self.folder / n for n in (*TRAIN, "test_batch", "batches.meta")]
        return (str(self.folder.resolve()), *[stamp(f) for f in files])

    def load(self) -> Loaded:
        if not all((self.folder / n).exists() for n in (*TRAIN, "test_batch")):
            self._download()
        train = [self._read(n) for n in TRAIN]
        test_x, test_y = self._read("test_batch")
        meta = self.folder / "batches.meta"
        if meta.exists():
            names = [n.decode() for n in self._batch(meta).get(b"label_names", [])]
            self.classes = tuple(names) if len(names) == 10 else self.classes
        return torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), test_x, test_y

    def _batch(self, path: Path) -> dict:
        try:
            return read_batch(path)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
            raise UserError(
                f"The CIFAR-10 file {path} cannot be read ({type(e).__name__}: {e}): it is truncated, corrupt, or not "
                f"one of CIFAR-10's python batches. Delete {self.folder} and run again to download a fresh copy, or "
                f"copy the files of cifar-10-python.tar.gz there."
            ) from None

    def _read(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.folder / name
        batch = self._batch(path)
        data, labels = batch.get(b"data"), batch.get(b"labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise UserError(f"The CIFAR-10 file {path} holds no (N, 3072) uint8 images: it is not a CIFAR-10 batch.")
        if labels is None or len(labels) != len(data):
            raise UserError(f"The CIFAR-10 file {path} has {len(data)} images but not as many labels.")
        images = torch.from_numpy(np.ascontiguousarray(data)).reshape(-1, 3, 32, 32)
        return images, torch.tensor(labels, dtype=torch.long)

    def _download(self) -> None:
        import torchvision.datasets  # about 3 s to import: only to download

        try:
            torchvision.datasets.CIFAR10(str(self.root), train=True, download=True)
        except Exception as e:  # noqa: BLE001 - whatever the download raised, the fix is the same
            raise UserError(
                f"CIFAR-10 is not in {self.folder} and torchvision could not download it ({type(e).__name__}: {e}). "
                f"Use a machine with internet (torchvision downloads it), or unpack cifar-10-python.tar.gz (from "
                f"https://www.cs.toronto.edu/~kriz/cifar.html) into {self.root} (or point data.root=... at the "
                f"folder that holds {FOLDER})."
            ) from None
