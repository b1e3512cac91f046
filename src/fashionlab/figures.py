"""The matplotlib figures of a run's evaluation: the confusion matrix and a grid of predictions.

TensorBoard shows them in IMAGES (`add_figure`). matplotlib is imported here, when a figure is drawn, and drawn
with the Agg backend: no display is needed.
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
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    high = counts.max().item() / 2
    for (row, col), n in zip(((r, c) for r in range(len(classes)) for c in range(len(classes))), counts.flatten()):
        if n:
            ax.text(col, row, str(int(n)), ha="center", va="center", fontsize=7, color="white" if n > high else "black")
    fig.tight_layout()
    return fig


def predictions_figure(images: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> Any:
    """Each image titled with the predicted class, its probability and the true class; wrong ones in red."""
    plt = _pyplot()
    n = len(images)
    cols = max(1, round(n**0.5))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    confidence, predicted = probs.max(1)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r")
        right = bool(predicted[i] == labels[i])
        mark = "" if right else "WRONG: "
        ax.set_title(
            f"{mark}{classes[int(predicted[i])]} {float(confidence[i]):.0%}\n(true: {classes[int(labels[i])]})",
            fontsize=9,
            color="green" if right else "red",
        )
    fig.tight_layout()
    return fig
