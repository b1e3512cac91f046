"""Augmentation of training batches (conf/augment/): whole batches at once, on the training device, never on the
validation or test splits. The random numbers come from torch's own generator of that device, which checkpoints
save, so a resumed run draws the same crops and flips as one never stopped.
"""

from __future__ import annotations

import torch


class CropFlip:
    """Random crop with padding, and horizontal flip: the standard augmentation for CIFAR-10 (He et al. 2016).

    Each image is padded by `padding` pixels of `fill` (black, as torchvision's RandomCrop pads) and a window of its
    own size cropped at a random place; then flipped left to right with probability `flip`.
    """

    def __init__(self, padding: int = 4, flip: float = 0.5):
        self.padding, self.flip = padding, flip

    def __call__(self, x: torch.Tensor, fill: float | torch.Tensor = 0) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.padding:
            p = self.padding
            padded = torch.empty(n, c, h + 2 * p, w + 2 * p, dtype=x.dtype, device=x.device)
            padded[:] = fill.to(padded.dtype) if isinstance(fill, torch.Tensor) else fill
            padded[:, :, p : p + h, p : p + w] = x
            top = torch.randint(0, 2 * p + 1, (n, 1), device=x.device) + torch.arange(h, device=x.device)
            left = torch.randint(0, 2 * p + 1, (n, 1), device=x.device) + torch.arange(w, device=x.device)
            images = torch.arange(n, device=x.device)[:, None, None, None]
            channels = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[images, channels, top[:, None, :, None], left[:, None, None, :]]
        if self.flip:
            flipped = torch.rand(n, device=x.device) < self.flip
            x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        return x
