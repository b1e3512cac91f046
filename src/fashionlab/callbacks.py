"""What watches a run: the hooks the Trainer calls (the TensorBoard logger's views, a search trial's reports, a
test's exact-step stop), and StopRun, which a hook raises to end the run with its outcome. Kept free of torch, so
that the search's job side can define its callback without importing the trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fashionlab.status import Outcome

if TYPE_CHECKING:
    from fashionlab.training import Trainer


class StopRun(Exception):
    """Raised by a callback to end the run with its outcome (a search's pruner: Outcome(PRUNED, ...))."""

    def __init__(self, outcome: Outcome):
        super().__init__(f"{outcome.status} after epoch {outcome.epochs}")
        self.outcome = outcome


class Callback:
    """What watches a run: the Trainer calls these hooks on each callback it was handed (setup's `callbacks`).

    Every hook does nothing unless a subclass says otherwise. on_epoch_end runs after the epoch's checkpoint,
    so a callback that raises StopRun there loses nothing; on_end runs however the run ended.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        pass

    def on_test_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        pass

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        pass
