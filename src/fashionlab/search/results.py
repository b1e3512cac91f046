"""What a search writes and says besides its trials: the saved command (multirun.yaml), the run folder names,
the progress line after every trial, and optimization_results.yaml at the end.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from fashionlab.files import redact, write_atomic
from fashionlab.search.budgets import duration
from fashionlab.search.study import FAILURE_ATTR, best_trial, reported

log = logging.getLogger(__name__)


def save_command(cfg: DictConfig) -> None:
    """multirun.yaml in the study's folder, as Hydra's basic sweeper writes it: the search's config and its
    command-line overrides (src/confirm.py runs them again). Passwords masked."""
    with suppress(OSError):  # a record for later: a full disk shows itself with the first trial
        write_atomic(Path(cfg.hydra.sweep.dir) / "multirun.yaml", redact(OmegaConf.to_yaml(cfg)))


def dirname(number: int, params: dict[str, Any], sweep_dir: Path) -> str:
    """`007_optimizer=adamw,lr=0.0062,batch_size=64`: the trial number, then its rounded parameters."""
    values = ",".join(f"{k.rsplit('.', 1)[-1]}={f'{v:.2g}' if isinstance(v, float) else v}" for k, v in params.items())
    taken = {p.name.split("_", 1)[0] for p in sweep_dir.glob(f"{number:03d}*")}
    prefix, n = f"{number:03d}", 2
    while prefix in taken:  # a folder left by an earlier study of the same name
        prefix, n = f"{number:03d}-{n}", n + 1
    return f"{prefix}_{values}"


def progress_line(
    trial: FrozenTrial,
    value: float | None,
    metric: str,
    best: str,
    done: int,
    done_before: int,
    n_trials: int,
    elapsed: float,
) -> str:
    """`trial 7 pruned after epoch 1: val/acc 0.8512 | best 0.8934 (trial 3) | 8 of 20 trials | 2m31s elapsed,
    about 3m45s left`: the trial's outcome, the best so far, trials done, time spent and left."""
    rate = (done - done_before) / elapsed if elapsed > 0 else 0
    if done >= n_trials:
        left = "done"
    else:
        left = f"about {duration((n_trials - done) / rate)} left" if rate else "time left unknown"
    if trial.state == TrialState.FAIL:  # why: diverged, failed, interrupted, lost ...
        outcome = trial.system_attrs.get(FAILURE_ATTR, "failed")
    elif trial.state == TrialState.PRUNED:
        outcome = f"pruned after epoch {max(reported(trial), default=0)}: {metric} {value:.4f}"
    else:
        outcome = f"completed: {metric} {value:.4f}"
    return (
        f"trial {trial.number} {outcome} | {best} | {done} of {n_trials} trials | {duration(elapsed)} elapsed, {left}"
    )


def best_so_far(study: optuna.Study) -> str:
    """`best 0.8934 (trial 3)`, or the size of a multi-objective study's Pareto front."""
    if len(study.directions) > 1:
        return f"Pareto front: {len(study.best_trials)} trials"
    best = best_trial(study)
    return f"best {best.value:.4f} (trial {best.number})" if best else "no completed trial yet"


def write(study: optuna.Study, sweep_dir: Path, metrics: list[str], confirmed: dict[str, Any]) -> None:
    """optimization_results.yaml, as the released sweeper writes it: the best trial (or a multi-objective study's
    Pareto front as `solutions`), and the confirmed choice beside it."""
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.number)
        solutions = [{"trial": t.number, "params": t.params, "values": t.values} for t in front]
        results: dict[str, Any] = {
            "name": "optuna",
            "study": study.study_name,
            "objectives": metrics,
            "solutions": solutions,
        }
        write_atomic(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
        log.info(f"Pareto front ({', '.join(metrics)}): trials {', '.join(str(t.number) for t in front)}")
        return
    best = best_trial(study)
    if best is None:
        log.warning("no trial of the study has completed: no best parameters to report")
        return
    results = {
        "name": "optuna",
        "study": study.study_name,
        "best_trial": best.number,
        "best_params": best.params,
        "best_value": best.value,
    }
    if confirmed:  # the confirmed choice, beside the search's own
        results["confirmed"] = confirmed
    write_atomic(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(results)))
    log.info(f"Best: trial {best.number}, value {best.value:.4f}, parameters {best.params}")
