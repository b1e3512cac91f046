"""How a run can end, and the exit status `python src/train.py` gives for each (README, "Exit status").

One place for both, so that metrics.json, HPARAMS, the leaderboard, the study and the shell agree. A job returns
an `Outcome`: the sweeper tells the study from it alone (COMPLETE with its value, PRUNED, or FAIL and why).
Kept free of torch: `src/compare.py` and `--help` import it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn


class Status(str, Enum):
    """What metrics.json's "status" says. A str, so it is written to JSON and compared as plain text."""

    COMPLETED = "completed"  # trained every epoch and was tested
    PRUNED = "pruned"  # a search stopped it early: it was losing (not a failure)
    DIVERGED = "diverged"  # the loss became NaN, infinite or too large
    FAILED = "failed"  # raised an error (a bad config inside a search, a bug, storage lost)
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: a checkpoint was written; resume= continues it

    def __str__(self) -> str:
        return self.value

    @property
    def has_result(self) -> bool:
        """A value a search can use: completed, or pruned with the value it had when it stopped."""
        return self in (Status.COMPLETED, Status.PRUNED)


@dataclass(frozen=True)
class Outcome:
    """How one job ended: what a run returns to its sweeper.

    `value` is the objective: the best over the epochs for a completed run, the value when it stopped for a
    pruned one, None otherwise. `float(outcome)` is that value for a completed run and NaN for any other, so a
    sweeper that only takes floats (hydra-optuna-sweeper's own) still reads it.
    """

    status: Status
    value: float | None = None
    epochs: int = 0  # epochs trained
    error: str | None = None  # why it did not complete (diverged, failed, interrupted)
    values: tuple[float, ...] = ()  # a multi-objective run's objectives (objective.metrics), value the first

    def __float__(self) -> float:
        return float(self.value) if self.status == Status.COMPLETED and self.value is not None else math.nan


# Exit statuses. Hydra's own errors (an unknown key or group option) exit with 1.
EXIT_OK = 0
EXIT_USER_ERROR = 2  # a problem to fix before running: a bad value, missing data, a bad checkpoint or storage
EXIT_NOT_COMPLETED = 3  # it started but did not complete: diverged, failed, or a search that had to stop
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM, after writing a checkpoint (the shell's 128 + SIGINT)


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print one paragraph, no traceback, and exit."""
    print(f"fashionlab: error: {message}", file=sys.stderr)
    sys.exit(code)
