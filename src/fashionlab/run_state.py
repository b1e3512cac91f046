"""A run's state: where it stands (epoch, batch, step), its best value, its latest metrics. The Trainer advances
it, a checkpoint saves it (under the key "progress", as checkpoints always have), metrics.json reports it.

Plain data (ints, floats, strings, dicts), so checkpoints load with `torch.load(weights_only=True)`.
Also the one definition of "is this value better than the best" (the leaderboard uses it too).
Kept free of torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields


def is_better(value: float | None, best: float | None, mode: str) -> bool:
    """True if `value` beats `best` under `mode` ("max" or "min"); None and NaN never win, and lose to anything."""
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


@dataclass
class Best:
    value: float
    epoch: int
    step: int


@dataclass
class RunState:
    total_steps: int  # the steps the learning-rate schedule was planned for
    model_target: str  # the model class, checked against the config on resume
    epoch: int = 0  # epochs finished
    batch: int = 0  # batches finished in the current epoch (non-zero only after an interrupt)
    step: int = 0  # optimizer steps so far
    images: int = 0  # training images seen
    best: Best | None = None  # the best value of the objective metric, at the end of an epoch
    metrics: dict[str, float] = field(default_factory=dict)  # the latest value of every metric
    train_time_s: float = 0.0  # training only (no validation)
    epoch_time_s: float = 0.0  # whole epochs, with their validation
    tested_epoch: int | None = None  # the epoch whose weights the test split was given (the best one)
    confusion: list[list[int]] | None = None  # the test split's counts[true class][predicted class]
    curve: dict[str, float] = field(default_factory=dict)  # the objective metric after each epoch ("1": ...)

    def update_best(self, metrics: dict[str, float], metric: str, mode: str) -> bool:
        """Record metrics[metric] if it beats the best so far; say whether it did."""
        value = metrics.get(metric)
        if value is None or not is_better(value, self.best.value if self.best else None, mode):
            return False
        self.best = Best(value=value, epoch=self.epoch, step=self.step)
        return True

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.train_time_s if self.train_time_s else None

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> RunState:
        known = {f.name for f in fields(cls)}
        state = {k: v for k, v in state.items() if k in known}  # older checkpoints carried extra keys
        best = state.get("best")
        return cls(
            **{
                **state,
                "best": Best(**best) if best else None,
                "metrics": dict(state.get("metrics", {})),
                "curve": dict(state.get("curve", {})),
            }
        )
