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
    counts = torch.tensor(confusion)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    fig.subplots_adjust(left=0.2, right=0.95, bottom=0.2, top=0.93)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.set_title(title, y=1.02)  # a fixed place: matplotlib would measure the tick labels to find one
    high = counts.max().item() / 2
    for (row, col), n in zip(((r, c) for r in range(len(classes)) for c in range(len(classes))), counts.flatten()):
        if n:
            ax.text(col, row, str(int(n)), ha="center", va="center", fontsize=7, color="white" if n > high else "black")
    return fig


def predictions_figure(images: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> Any:
    """Each image titled with the predicted class, its probability and the true class; wrong ones in red."""
    plt = _pyplot()
    n, (h, w) = len(images), images.shape[-2:]
    cols = max(1, round(n**0.5))
    rows = -(-n // cols)
    gap_x, gap_y = w // 4, h // 2  # room for two lines of title above each image
    grid = torch.zeros(rows * (h + gap_y), cols * (w + gap_x), dtype=images.dtype)
    fig = plt.figure(figsize=(grid.shape[1] * 0.06, grid.shape[0] * 0.06))  # inches: the grid's shape
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    confidence, predicted = probs.max(1)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + gap_y) + gap_y, c * (w + gap_x) + gap_x // 2
        grid[top : top + h, left : left + w] = images[i]
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
    ax.imshow(grid, cmap="gray_r", interpolation="nearest")
    return fig
