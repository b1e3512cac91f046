"""Fashion-MNIST and MNIST: 60,000 + 10,000 grayscale 28x28 images in the IDX format, read from
`root`/<FashionMNIST|MNIST>/raw (the files torchvision's data sets download).

Where those files are missing they come from a Debian package (`dataset-fashion-mnist`: `debian_dir`), else from
torchvision's download. Read here rather than with torchvision's reader: importing torchvision costs about 3 s.
"""

from __future__ import annotations

import functools
import gzip
import math
import shutil
import struct
from pathlib import Path
from typing import Any

import torch

from fashionlab.config import UserError
from fashionlab.data.base import ImageData, Loaded, stamp
from fashionlab.files import commit

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST format): big-endian magic (0, 0, type, ndim), ndim sizes, then the uint8 data."""
    raw = path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = raw[4 + 4 * ndim :]
    if len(data) != math.prod(shape):
        raise ValueError(f"{len(data)} bytes of data for a shape of {shape}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(shape)


class IDXData(ImageData):
    """A data set of IDX files under `root`/<folder>/raw: what MNIST and Fashion-MNIST share."""

    folder = ""  # FashionMNIST, MNIST: torchvision's folder and class name
    name = ""  # as people write it

    def __init__(self, root: str = "data", debian_dir: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.debian_dir = Path(debian_dir) if debian_dir else None

    @property
    def raw(self) -> Path:
        return self.root / self.folder / "raw"

    def source(self) -> tuple:
        raw = self.raw.resolve()
        return (str(raw), *[stamp(raw / name) for name in FILES])

    def load(self) -> Loaded:
        raw = self.raw
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
        return train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1), test_y.long()

    def _fetch(self, raw: Path) -> None:
        try:
            raw.mkdir(parents=True, exist_ok=True)
            probe = raw / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise UserError(
                f"data.root={self.root} is not writable ({e.strerror}: {e.filename}), and the {self.name} files "
                f"must be written there. Pass a writable folder, e.g. data.root=$HOME/data."
            ) from None
        debian = self.debian_dir
        if debian is not None and all((debian / f"{name}.gz").exists() for name in FILES):
            for name in FILES:  # unpacked atomically: a kill leaves no half file
                with gzip.open(debian / f"{name}.gz", "rb") as src:
                    commit(raw / name, functools.partial(_copy, src))
            return
        import torchvision.datasets  # about 3 s to import: only to download

        try:
            getattr(torchvision.datasets, self.folder)(str(self.root), train=True, download=True)
        except Exception as e:  # noqa: BLE001 - whatever the download raised, the fix is the same
            raise UserError(self.missing(raw, e)) from None

    def missing(self, raw: Path, error: Exception) -> str:
        return (
            f"{self.name} is not in {raw} and torchvision could not download it ({type(error).__name__}: {error}). "
            f"Use a machine with internet (torchvision downloads it), or copy the four *-ubyte files into {raw} "
            f"(or point data.root=... at a folder holding {self.folder}/raw)."
        )


def _copy(src: Any, tmp: Path) -> None:
    with open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)


class FashionMNIST(IDXData):
    """Fashion-MNIST: Zalando's 10 classes of clothing, normalised as the tutorial does ((x - 0.5) / 0.5)."""

    folder, name = "FashionMNIST", "Fashion-MNIST"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle Boot")

    def missing(self, raw: Path, error: Exception) -> str:
        return (
            f"Fashion-MNIST is not in {raw}, not in {self.debian_dir}, and torchvision could not download it "
            f"({type(error).__name__}: {error}). Get it one of these ways: `apt-get install dataset-fashion-mnist` "
            f"(Debian/Ubuntu; `make data` does this), a machine with internet (torchvision downloads it), or "
            f"copy the four *-ubyte files into {raw} (or point data.root=... at a folder holding "
            f"FashionMNIST/raw). To try the pipeline without it: data=synthetic."
        )


class MNIST(IDXData):
    """MNIST: handwritten digits 0-9, normalised with its usual mean and standard deviation."""

    folder, name = "MNIST", "MNIST"
    classes = tuple(str(d) for d in range(10))
    default_mean, default_std = (0.1307,), (0.3081,)
