"""Confirmation (hydra.sweeper.confirm): the top_k completed trials trained again with `seeds` new seeds each,
into <sweep dir>/confirm/<trial folder>/seed=<s>/, then each trial's mean and spread over its seeds (its own run
included) recorded as a study attribute, ranked, and the best tested against the runner-up.

Which trials and which jobs are functions of the study's trials and the settings; loop.py launches the jobs
through the search's own launcher. A run already completed there is not trained again, one with a checkpoint
continues from it.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fashionlab.leaderboard.groups import grouped, verdict
from fashionlab.runs import load_runs, number, read_status, seed_of
from fashionlab.search import CONFIRMS_ENV
from fashionlab.search.optuna_internals import trial_by_number
from fashionlab.search.storage import retrying
from fashionlab.status import Status

log = logging.getLogger(__name__)
REPEAT = {"seed", "data.split_seed"}  # what a confirmation run sets itself


def top_trials(trials: list[FrozenTrial], k: int, maximize: bool) -> list[FrozenTrial]:
    """The k best completed trials, best first."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    return sorted(done, key=lambda t: t.values[0] if maximize else -t.values[0], reverse=True)[:k]


def jobs(
    top: list[FrozenTrial],
    seeds: list[int],
    folder: Path,
    fixed: dict,
    fixed_overrides: list[str],
    split_seed: bool,
) -> tuple[list[tuple[str, ...]], int]:
    """The overrides of each confirmation run still to train, and how many are done already."""
    fixed = {k: v for k, v in fixed.items() if k not in REPEAT}
    fixed_overrides = [o for o in fixed_overrides if o.split("=", 1)[0].lstrip("+~") not in REPEAT]
    todo, done = [], 0
    for t in top:
        name = Path(t.user_attrs["run_dir"]).name
        for seed in seeds:
            sub = f"confirm/{name}/seed={seed}"
            if read_status(folder / sub) == Status.COMPLETED:
                done += 1
                continue
            resume = (f"resume='{folder / sub}'",) if (folder / sub / "checkpoints" / "last.pt").is_file() else ()
            todo.append(
                (
                    *(f"{k}={v}" for k, v in {**t.params, **fixed}.items()),
                    *fixed_overrides,
                    f"seed={seed}",
                    *((f"data.split_seed={seed}",) if split_seed else ()),
                    f"hydra.sweep.subdir='{sub}'",
                    f"++hydra.job.env_set.{CONFIRMS_ENV}={t.number}",
                    *resume,
                )
            )
    return todo, done


def record(study: optuna.Study, folder: Path, numbers: list[int], metric: str, timeout: float) -> dict[str, Any]:
    """Each confirmed trial's n, mean, sd, 95% interval, seeds and test mean as the study attribute
    `confirmed trial N`; returns optimization_results.yaml's `confirmed:` (empty if nothing was confirmed)."""
    runs = [r for r in load_runs(folder) if number(r) is not None]
    groups = [g for g in grouped(runs) if g.first.get("trial") in numbers and len(g.runs) > 1]
    trials = {}
    for rank, g in enumerate(groups, 1):
        test = g.test()
        summary = {
            "rank": rank,
            "n": len(g.done),
            "mean": g.mean,
            "sd": g.sd,
            "interval95": [g.mean - g.interval(), g.mean + g.interval()],
            "seeds": [seed_of(r) for r in g.done],
            "test_acc_mean": sum(test) / len(test) if test else None,
            "runs": len(g.runs),
        }
        n = g.first["trial"]
        # Optuna keeps a finished trial's attributes as they were (UpdateFinishedTrialError): the
        # confirmation is the study's attribute, one per trial (optuna-dashboard: Study User Attributes).
        retrying(functools.partial(study.set_user_attr, f"confirmed trial {n}", summary), "record", timeout)
        trials[n] = summary
        log.info(
            f"confirmed trial {n}: {metric} {g.mean:.4f} +/- {g.sd:.4f} over {len(g.done)} seeds "
            f"({len(g.runs) - len(g.done)} not completed)"
        )
    said = verdict(groups)
    if said:
        log.info(said)
    if not groups or len(groups[0].done) < 2:
        return {}
    best = groups[0].first
    return {
        "best_trial": best["trial"],
        "best_params": dict(trial_by_number(study, best["trial"]).params),
        "mean": groups[0].mean,
        "sd": groups[0].sd,
        "verdict": said,
        "trials": trials,
    }
