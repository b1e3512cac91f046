"""At the end of a multirun: the search-level TensorBoard run (`_sweep`), leaderboard.txt and comparison.png.

SweepSummary is a Hydra callback (conf/hydra/default.yaml), so every grid and every search gets them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fashionlab.files import write_atomic
from fashionlab.leaderboard.groups import confirmed
from fashionlab.leaderboard.importance import Found, importance, importance_line
from fashionlab.leaderboard.plot import plot
from fashionlab.leaderboard.table import leaderboard
from fashionlab.runs import best_so_far, in_order, load_runs, number, objective
from fashionlab.status import Status

log = logging.getLogger(__name__)
SWEEP_RUN = "_sweep"  # the search-level TensorBoard run, beside the trials' runs


def write_sweep_run(sweep_dir: Path, runs: list[dict], table: str, found: Found | None) -> None:
    """The search-level TensorBoard run, rewritten whole: each trial's objective by trial number (completed and
    pruned apart), the best so far, confirmed trials' mean and spread, the leaderboard `table` as text, and the
    importance `found`."""
    from torch.utils.tensorboard import SummaryWriter  # torch: only at a sweep's end, in a process that has it

    ordered = [r for r in in_order(runs) if number(r) is not None]
    if not ordered:
        return
    metric, mode = ordered[0]["objective"]["metric"], ordered[0]["objective"]["mode"]
    folder = sweep_dir / SWEEP_RUN
    for old in folder.glob("events.out.tfevents.*"):  # one study, many workers and continuations: one view
        old.unlink()
    with SummaryWriter(str(folder)) as w:
        for r, best in zip(ordered, best_so_far(ordered, mode)):
            value = objective(r)
            if r["status"] == Status.COMPLETED and not math.isnan(value):
                w.add_scalar(f"sweep/{metric}", value, number(r))
            elif r["status"] == Status.PRUNED and not math.isnan(value):
                w.add_scalar(f"sweep/pruned_{metric}", value, number(r))
            if not math.isnan(best):
                w.add_scalar(f"sweep/best_{metric}", best, number(r))
        for g in confirmed(runs):  # mean and spread over seeds, at the trial's number
            w.add_scalar(f"sweep/confirmed_{metric}_mean", g.mean, g.first["trial"])
            w.add_scalar(f"sweep/confirmed_{metric}_sd", g.sd, g.first["trial"])
        w.add_text("sweep/leaderboard", "\n".join("    " + line for line in table.splitlines()), 0)
        for line in importance_line(found):
            w.add_text("sweep/importance", line, 0)


class SweepSummary(Callback):
    """At the end of a multirun: the search-level TensorBoard run, leaderboard.txt and comparison.png."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = [r for r in load_runs(sweep_dir) if number(r) is not None]
        if not runs:
            return
        found = importance(runs)
        table = leaderboard(runs, found)
        write_sweep_run(sweep_dir, runs, table, found)
        write_atomic(sweep_dir / "leaderboard.txt", table + "\n")
        plot(runs, sweep_dir / "comparison.png", found)
        log.info(f"leaderboard ({sweep_dir}):\n{table}")
