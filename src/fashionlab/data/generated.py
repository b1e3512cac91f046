"""Data sets that need no file: scikit-learn's handwritten digits (real images, bundled with scikit-learn), and
synthetic images of any shape (for tests and for trying the pipeline offline).
"""

from __future__ import annotations

from typing import Any

import torch

from fashionlab.config import UserError
from fashionlab.data.base import ImageData, Loaded


class Digits(ImageData):
    """scikit-learn's handwritten digits: 1,797 real 8x8 grayscale images of 0-9 (16 grey levels, scaled to 0-255),
    bundled with scikit-learn, so no download. `test_size` images are held out as the test split by `test_seed`."""

    classes = tuple(str(d) for d in range(10))
    default_mean = default_std = None  # measured on the training split

    def __init__(self, test_size: int = 360, test_seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.test_size, self.test_seed = test_size, test_seed

    def source(self) -> tuple:
        return self.test_size, self.test_seed

    def load(self) -> Loaded:
        from sklearn.datasets import load_digits  # scikit-learn takes a second to import: only for this data set

        digits = load_digits()
        images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
        labels = torch.from_numpy(digits.target).long()
        if not 0 < self.test_size < len(labels):
            raise UserError(
                f"data.test_size={self.test_size} must be between 1 and {len(labels) - 1} (of 1,797 images)."
            )
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.test_seed))
        test, train = perm[: self.test_size], perm[self.test_size :]
        return images[train], labels[train], images[test], labels[test]


class Synthetic(ImageData):
    """Random images of any shape, one noisy template per class: learnable, offline, instant. The default is
    Fashion-MNIST's shape (1x28x28, 10 classes); `channels=3 image_size=32` makes CIFAR-shaped ones."""

    def __init__(
        self,
        num_train: int = 2000,
        num_test: int = 500,
        seed: int = 0,
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.classes = tuple(f"class {i}" for i in range(num_classes))

    def source(self) -> tuple:
        return self.num_train, self.num_test, self.seed, self.channels, self.image_size, self.num_classes

    def load(self) -> Loaded:
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.channels, self.image_size, self.image_size)
        templates = torch.rand(self.num_classes, *shape, generator=g) * 255

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            labels = torch.randint(self.num_classes, (n,), generator=g)
            noise = torch.randn(n, *shape, generator=g) * 30
            return (templates[labels] + noise).clamp(0, 255).to(torch.uint8), labels

        return (*draw(self.num_train), *draw(self.num_test))
