"""The user's own images: `data.root=PATH` holding one folder per class, PNG or JPEG files in each.

`PATH/train/<class>/` and `PATH/test/<class>/` when the user has a test split; otherwise `PATH/<class>/`, and a
test split is held out of it by a seed of its own (`test_seed`, which no training seed moves). Every image is
resized to `image_size` and made grayscale or RGB (`channels`; null: RGB if any image has colour), decoded once,
and cached (uint8 tensors in `cache_dir`), so that the next run with the same files and settings starts at once.
A file that is not an image, an empty class folder or a folder with no classes is one paragraph naming the path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashionlab.config import UserError
from fashionlab.data.base import ImageData, Loaded, stamp
from fashionlab.files import commit

SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageFolder(ImageData):
    """One folder per class; see the module's description. `test_size`: the share (below 1) or number of images
    held out as the test split when there is no test/ folder."""

    default_mean = default_std = None  # the user's images: measured on the training split

    def __init__(
        self,
        root: str = "???",
        image_size: int | list[int] = 32,
        channels: int | None = None,
        test_size: float = 0.2,
        test_seed: int = 0,
        cache_dir: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        self.image_size = (int(size[0]), int(size[-1]))
        self.channels, self.test_size, self.test_seed = channels, test_size, test_seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / ".fashionlab-cache"

    def _files(self) -> dict[str, dict[str, list[Path]]]:
        """{"train"/"test"/"all": {class: [files]}}: the layout found under root, checked."""
        if not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is not a folder. Point data.root at a folder holding one folder per class "
                f"(PATH/<class>/*.png), or PATH/train/<class>/ and PATH/test/<class>/."
            )
        split = (self.root / "train").is_dir() and (self.root / "test").is_dir()
        parts = {"train": self.root / "train", "test": self.root / "test"} if split else {"all": self.root}
        found: dict[str, dict[str, list[Path]]] = {}
        for part, folder in parts.items():
            classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not classes:
                raise UserError(
                    f"{folder} holds no class folders: put the images of each class in a folder of its own, named "
                    f"by the class ({folder}/cat/1.png, {folder}/dog/2.jpg, ...)."
                )
            found[part] = {}
            for c in classes:
                files = sorted(p for p in c.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
                if not files:
                    raise UserError(
                        f"The class folder {c} holds no PNG or JPEG image: add its images, or remove the folder."
                    )
                found[part][c.name] = files
        if split and set(found["test"]) - set(found["train"]):
            extra = sorted(set(found["test"]) - set(found["train"]))
            raise UserError(
                f"{self.root / 'test'} has classes the training folder has not ({', '.join(extra)}): the test split "
                f"can only hold classes the model learns. Add them to {self.root / 'train'}, or remove them."
            )
        return found

    @functools.cached_property
    def _listing(self) -> tuple[dict[str, dict[str, list[Path]]], str]:
        """The files found (walked once per run: setup's source() and load() both need them) and their digest."""
        found = self._files()
        stats = [(str(p), stamp(p)) for part in found.values() for fs in part.values() for p in fs]
        digest = hashlib.sha1(
            json.dumps([stats, self.image_size, self.channels, self.test_size, self.test_seed]).encode()
        )
        return found, digest.hexdigest()

    def source(self) -> tuple:
        return (str(self.root.resolve()), self._listing[1])

    def load(self) -> Loaded:
        files, key = self._listing
        cache = self.cache_dir / f"images-{key[:16]}.pt"
        if cache.is_file():
            try:
                saved = torch.load(cache, weights_only=True)
                self.classes = tuple(saved["classes"])
                return saved["train_x"], saved["train_y"], saved["test_x"], saved["test_y"]
            except Exception:  # noqa: BLE001 - a cache that cannot be read is made again
                pass
        classes = sorted(files["train"] if "train" in files else files["all"])
        self.classes = tuple(classes)
        paths = {
            part: [(p, classes.index(c)) for c, ps in by_class.items() for p in ps] for part, by_class in files.items()
        }
        rgb = (
            self.channels == 3
            if self.channels is not None
            else self._any_colour([p for ps in paths.values() for p, _ in ps])
        )
        decoded = {part: self._decode(items, rgb) for part, items in paths.items()}
        if "all" in decoded:
            x, y = decoded["all"]
            n_test = int(round(self.test_size * len(y))) if self.test_size < 1 else int(self.test_size)
            if not 0 < n_test < len(y):
                raise UserError(
                    f"data.test_size={self.test_size} holds out {n_test} of {len(y)} images: give a share between 0 "
                    f"and 1 (or a number of images) that leaves some for the test split and some for training."
                )
            perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.test_seed))
            decoded = {"train": (x[perm[n_test:]], y[perm[n_test:]]), "test": (x[perm[:n_test]], y[perm[:n_test]])}
        (train_x, train_y), (test_x, test_y) = decoded["train"], decoded["test"]
        saved = {"classes": list(classes), "train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
        try:  # a cache that cannot be written (a read-only data folder) only costs the next run the decoding
            commit(cache, functools.partial(torch.save, saved))
        except OSError:
            pass
        return train_x, train_y, test_x, test_y

    def _any_colour(self, paths: list[Path]) -> bool:
        from PIL import Image  # PIL: only when images are decoded

        for p in paths:
            with Image.open(p) as image:
                if image.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    return True
        return False

    def _decode(self, items: list[tuple[Path, int]], rgb: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Each file as a uint8 (C, H, W) image of `size`; a file that is not an image is one UserError."""
        from PIL import Image, UnidentifiedImageError  # PIL: only when images are decoded

        h, w = self.image_size
        images = torch.empty(len(items), 3 if rgb else 1, h, w, dtype=torch.uint8)
        for i, (path, _) in enumerate(items):
            try:
                with Image.open(path) as image:
                    pixels = image.convert("RGB" if rgb else "L").resize((w, h), Image.Resampling.BILINEAR)
                    array = np.asarray(pixels, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise UserError(
                    f"{path} is not an image PIL can read ({type(e).__name__}: {e}). Remove it from {path.parent}, "
                    f"or replace it with a PNG or JPEG file."
                ) from None
            images[i] = torch.from_numpy(array.copy()).reshape(h, w, -1).permute(2, 0, 1)
        return images, torch.tensor([label for _, label in items], dtype=torch.long)
