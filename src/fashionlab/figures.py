"""The matplotlib figures of a run's evaluation: the confusion matrix and a grid of predictions.

TensorBoard shows them in IMAGES (`add_figure`). matplotlib is imported here, when a figure is drawn, and drawn
with the Agg backend: no display is needed. Every trial of a search draws both, so they are kept cheap: fixed
margins instead of tight_layout (which draws the figure once more to measure it), and the predictions as one
image with the titles as text, not an axes per image (about 0.05 s a figure instead of 0.3 here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Any:
    """Counts of (true class, predicted class), class names on both axes; the diagonal is what it got right."""
    plt = _pyplot()
    counts, k = torch.tensor(confusion), len(classes)
    side = max(1.0, k / 10)  # 10 classes fit 7.5 x 6.5 inches; more classes get more room
    fig, ax = plt.subplots(figsize=(7.5 * side, 6.5 * side))
    fig.subplots_adjust(left=0.2, right=0.95, bottom=0.2, top=0.93)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.set_title(title, y=1.02)  # a fixed place: matplotlib would measure the tick labels to find one
    high = counts.max().item() / 2
    for (row, col), n in zip(((r, c) for r in range(k) for c in range(k)), counts.flatten()):
        if n and k <= 30:  # beyond 30 classes the colours say it; numbers would not fit
            ax.text(col, row, str(int(n)), ha="center", va="center", fontsize=7, color="white" if n > high else "black")
    return fig


def predictions_figure(images: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> Any:
    """Each image (uint8, (N, C, H, W)) titled with the predicted class, its probability and the true class; wrong
    ones in red. Grayscale images are drawn dark on white (Fashion-MNIST's items), colour ones as they are."""
    plt = _pyplot()
    n, c, h, w = images.shape
    cols = max(1, round(n**0.5))
    rows = -(-n // cols)
    gap_x, gap_y = max(1, w // 4), max(1, h // 2)  # room for two lines of title above each image
    background = 0 if c == 1 else 255  # white, as each is drawn
    grid = torch.full((rows * (h + gap_y), cols * (w + gap_x), c), background, dtype=images.dtype)
    inches = 1.68 / max(h, w)  # per pixel: every image 1.68 inches wide, whatever its size
    fig = plt.figure(figsize=(grid.shape[1] * inches, grid.shape[0] * inches))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    confidence, predicted = probs.max(1)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + gap_y) + gap_y, c * (w + gap_x) + gap_x // 2
        grid[top : top + h, left : left + w] = images[i].permute(1, 2, 0)
        right = bool(predicted[i] == labels[i])
        ax.text(
            left + w / 2,
            top - 1,
            f"{'' if right else 'WRONG: '}{classes[int(predicted[i])]} {float(confidence[i]):.0%}\n"
            f"(true: {classes[int(labels[i])]})",
            ha="center",
            va="bottom",
            fontsize=9,
            color="green" if right else "red",
        )
    if c == 1:
        ax.imshow(grid[:, :, 0], cmap="gray_r", interpolation="nearest")
    else:
        ax.imshow(grid.numpy(), interpolation="nearest")
    return fig
