"""A model's figures on a split: loss and accuracy, every prediction (per class, the confusion matrix), and its
latency. The Trainer validates and tests with these; src/eval.py evaluates a checkpoint with the same code, so
its figures are the run's own.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data: Any, split: str, autocast: Any = nullcontext) -> dict[str, float]:
    """Mean loss and accuracy over a whole split, in large batches; one read from the device at the end."""
    model.eval()
    loss_sum: Any = 0  # tensors on the device after the first batch
    correct: Any = 0
    for x, y in data.eval_batches(split):
        with autocast():
            logits = model(x)
        loss_sum = loss_sum + F.cross_entropy(logits.float(), y, reduction="sum")
        correct = correct + (logits.argmax(1) == y).sum()
    n = data.size(split)
    return {f"{split}/loss": float(loss_sum) / n, f"{split}/acc": float(correct) / n}


@torch.inference_mode()
def predict(model: torch.nn.Module, data: Any, split: str, autocast: Any = nullcontext) -> Predictions:
    """Every image of a split through the model: its logits (float32, on the CPU) and the labels."""
    model.eval()
    logits, labels = [], []
    for x, y in data.eval_batches(split):
        with autocast():
            logits.append(model(x).float().cpu())
        labels.append(y.cpu())
    return Predictions(split, torch.cat(logits), torch.cat(labels), tuple(data.classes))


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, data: Any, autocast: Any = nullcontext, images: int = 200) -> float:
    """Milliseconds per image, one image at a time (as a deployed classifier answers requests): the median of
    3 passes over the first `images` test images, after 10 to warm up, on the run's device and threads."""
    model.eval()
    x, _ = next(data.eval_batches("test"))
    x = x[:images]
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with autocast():
        for i in range(min(10, len(x))):
            model(x[i : i + 1])
        times = []
        for _ in range(3):
            synchronize()
            start = time.perf_counter()
            for i in range(len(x)):
                model(x[i : i + 1])
            synchronize()
            times.append((time.perf_counter() - start) * 1000 / len(x))
    return sorted(times)[1]


def class_tag(name: str) -> str:
    """A class name as a tag: "T-shirt/top" would make TensorBoard open one more level."""
    return name.replace("/", "-")


@dataclass
class Predictions:
    """A split's logits and labels, and what follows from them: loss, accuracy, per class, the confusion matrix."""

    split: str
    logits: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    @property
    def confusion(self) -> torch.Tensor:
        """counts[true class, predicted class]."""
        n = len(self.classes)
        return torch.bincount(self.labels * n + self.logits.argmax(1), minlength=n * n).reshape(n, n)

    def metrics(self) -> dict[str, float]:
        """`split/loss`, `split/acc`, and `split/acc_per_class/<class>` for each class the split has."""
        s, counts = self.split, self.confusion
        out = {
            f"{s}/loss": float(F.cross_entropy(self.logits, self.labels, reduction="sum")) / len(self.labels),
            f"{s}/acc": float(counts.diag().sum()) / len(self.labels),
        }
        for i, name in enumerate(self.classes):
            if counts[i].sum():
                out[f"{s}/acc_per_class/{class_tag(name)}"] = float(counts[i, i] / counts[i].sum())
        return out
