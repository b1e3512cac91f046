"""What every data set is: train, validation and test splits of uint8 images (N, C, H, W) with their labels, held
in memory on the training device, shuffled by index each epoch and normalised per batch, and what the data set says
it holds: its image shape (`shape`), its class names (`classes`) and its normalisation (`mean`, `std`).

The model, the views and the figures take these from the data set, never from a second place. A subclass says
where the images come from (`load`). `in_memory=false` keeps the classic per-sample path (PIL image -> ToTensor ->
Normalize through a DataLoader) for data that does not fit; both paths draw the same permutation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from fashionlab.config import UserError

Batch = tuple[torch.Tensor, torch.Tensor]
Loaded = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
_LAST_SPLITS: dict[str, Any] = {}  # the splits this process made last (ImageData.setup)


class ImageData:
    """Train/validation/test splits of uint8 images; subclasses say where the images come from and what they are.

    `mean` and `std` (per channel, in [0, 1]; one value for all channels) normalise each batch as torchvision's
    Normalize does; null: the data set's own (`default_mean`, `default_std`), or, where it has none, the training
    split's own mean and standard deviation. `augment` transforms each training batch (conf/augment/).
    """

    classes: tuple[str, ...] = ()
    default_mean: Sequence[float] | None = (0.5,)  # None: measured on the training split
    default_std: Sequence[float] | None = (0.5,)

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: float = 5000,
        split_seed: int = 0,
        in_memory: bool = True,
        num_workers: int = 2,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: Callable[..., torch.Tensor] | None = None,
    ):
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.in_memory = in_memory
        self.num_workers = num_workers
        self.mean_given, self.std_given = mean, std
        self.augment = augment
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def load(self) -> Loaded:
        """Train images, train labels, test images, test labels: uint8 (N, C, H, W) and int64 (N). A subclass that
        learns its class names while loading sets `self.classes`."""
        raise NotImplementedError

    def source(self) -> tuple:
        """What load() reads, to tell whether the splits this process made last are the same (see setup)."""
        return ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        return tuple(self.splits["train"][0].shape[1:])  # type: ignore[return-value]

    def setup(self, device: torch.device) -> None:
        """The three splits, on `device`, and the normalisation. A process that runs trial after trial (a search
        under the basic or joblib launcher) reads and splits the same data each time: the last splits are kept and
        reused (read-only: batches are copies) while the source and the split settings are the same."""
        key = (type(self).__name__, *self.source(), self.val_size, self.split_seed)
        if _LAST_SPLITS.get("key") != key:
            _LAST_SPLITS.clear()
            _LAST_SPLITS.update(key=key, splits=self._split(), classes=tuple(self.classes))
        self.splits = dict(_LAST_SPLITS["splits"])
        self.classes = _LAST_SPLITS["classes"]
        self.mean, self.std = self._normalisation()
        self._scale, self._offset = _affine(self.mean, self.std, device if self.in_memory else torch.device("cpu"))
        if self.in_memory:
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}
        self.device = device

    def _split(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        train_x, train_y, test_x, test_y = self.load()
        n_val = round(self.val_size * len(train_x)) if self.val_size < 1 else int(self.val_size)
        if not 0 < n_val < len(train_x):
            raise UserError(
                f"data.val_size={self.val_size} leaves no training images (or no validation images): the training set "
                f"has {len(train_x)} images. Use a number below that, or a share, e.g. data.val_size=0.1."
            )
        # The split depends on split_seed alone, so runs with different seeds are judged on the same images.
        perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.split_seed))
        val, train = perm[:n_val], perm[n_val:]
        return {
            "train": (train_x[train], train_y[train]),
            "val": (train_x[val], train_y[val]),
            "test": (test_x, test_y),
        }

    def _normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per channel: the given values, else the data set's own, else the training split's."""
        channels = self.shape[0]
        images = self.splits["train"][0]
        mean = self.mean_given if self.mean_given is not None else self.default_mean
        std = self.std_given if self.std_given is not None else self.default_std
        measured = images[:20000].float().div(255)
        if mean is None:
            mean = measured.mean(dim=(0, 2, 3)).tolist()
        if std is None:
            std = measured.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        for name, values in (("mean", mean), ("std", std)):
            if len(values) not in (1, channels):
                raise UserError(
                    f"data.{name}={list(values)} has {len(values)} values, but the images have {channels} channels: "
                    f"give one value per channel, or one for all."
                )
        if min(std) <= 0:
            raise UserError(f"data.std={list(std)} must be greater than 0 for every channel.")
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float, as torchvision's ToTensor then Normalize(mean, std): (x / 255 - mean) / std,
        computed as x / (255 std) - mean / std (for Fashion-MNIST's 0.5 and 0.5: x / 127.5 - 1, the tutorial's)."""
        return images.float().div_(self._scale).sub_(self._offset)

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def steps_per_epoch(self) -> int:
        return -(-self.size("train") // self.batch_size)

    def train_batches(self, order: torch.Generator, skip: int = 0) -> Iterator[Batch]:
        """One epoch in the order drawn from `order`, starting at batch `skip` (to resume mid-epoch); augmented."""
        images, labels = self.splits["train"]
        perm = torch.randperm(len(labels), generator=order)[skip * self.batch_size :]
        if len(perm) == 0:  # stopped after the epoch's last batch; split() would still give one empty batch
            return
        if not self.in_memory:  # normalised per sample: an augmentation pads with what black becomes
            for x, y in self._per_sample(images, labels, perm, self.batch_size):
                yield (self.augment(x, fill=-self._offset) if self.augment else x), y
            return
        perm = perm.to(images.device)
        for idx in perm.split(self.batch_size):
            x = images[idx]
            yield self.normalize(self.augment(x) if self.augment else x), labels[idx]

    def eval_batches(self, split: str) -> Iterator[Batch]:
        images, labels = self.splits[split]
        if not self.in_memory:
            yield from self._per_sample(images, labels, torch.arange(len(labels)), self.eval_batch_size)
            return
        for x, y in zip(images.split(self.eval_batch_size), labels.split(self.eval_batch_size)):
            yield self.normalize(x), y

    def _per_sample(
        self, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, batch_size: int
    ) -> Iterator[Batch]:
        dataset = torch.utils.data.Subset(PerSampleDataset(images, labels, self.mean, self.std), order.tolist())
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=self.num_workers
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class PerSampleDataset(torch.utils.data.Dataset):
    """What torchvision's data sets do per item: uint8 array -> PIL image -> ToTensor -> Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
        from torchvision import transforms  # torchvision takes about 3 s to import: only on this path

        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image  # only on this path, as torchvision's own data sets do

        image = self.images[i]
        pixels = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
        return self.transform(Image.fromarray(pixels, mode="L" if image.shape[0] == 1 else "RGB")), int(self.labels[i])


def stamp(path: Path) -> tuple[int, int] | None:
    """A file's size and modification time (None if it is missing): what tells a `source()` that a file changed."""
    try:
        stat = path.stat()
    except OSError:  # missing, or a path through a file
        return None
    return stat.st_size, stat.st_mtime_ns


def _affine(mean: Sequence[float], std: Sequence[float], device: torch.device) -> tuple[Any, Any]:
    """(scale, offset) with x / scale - offset = (x / 255 - mean) / std: plain numbers when every channel has the
    same values (the same arithmetic as before there were channels), else (C, 1, 1) tensors on `device`."""
    scale = [255 * s for s in std]
    offset = [m / s for m, s in zip(mean, std)]
    if len(set(scale)) == 1 and len(set(offset)) == 1:
        return scale[0], offset[0]
    return (
        torch.tensor(scale, device=device).view(-1, 1, 1),
        torch.tensor(offset, device=device).view(-1, 1, 1),
    )
