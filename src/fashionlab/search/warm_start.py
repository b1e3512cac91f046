"""Warm starts: parameter sets queued to be tried first (hydra.sweeper.enqueue), and finished runs of other folders
added to the study as completed trials (hydra.sweeper.warm_start_from). Both happen once per study, however often
the search is started.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from fashionlab.config import UserError
from fashionlab.runs import load_runs
from fashionlab.search.checks import check_fits, fits
from fashionlab.search.storage import retrying
from fashionlab.search.study import IMPORTED_ATTR
from fashionlab.status import Status

log = logging.getLogger(__name__)


def enqueue(study: optuna.Study, sets: list[Any], space: dict[str, BaseDistribution], timeout: float) -> None:
    """Queue each parameter set (checked against the space) unless the study has it already."""
    for i, params in enumerate(sets):
        params = dict(params)
        check_fits(params, space, f"hydra.sweeper.enqueue[{i}]")
        waiting = functools.partial(study.get_trials, deepcopy=False, states=(TrialState.WAITING,))
        before = len(waiting())
        retrying(functools.partial(study.enqueue_trial, params, skip_if_exists=True), "queue a trial", timeout)
        if len(waiting()) > before:
            log.info(f"queued {params} (hydra.sweeper.enqueue): tried before the sampler's trials")


def trial_of_run(run: dict, space: dict[str, BaseDistribution], metric: str) -> FrozenTrial | None:
    """A completed run (a metrics.json read back) as a completed trial of the study, if it fits: it reports the
    same objective metric and chose a value inside the space for every searched parameter (from its choices, or
    its saved config)."""
    if run["status"] != Status.COMPLETED or run.get("confirms") is not None or run["objective"]["metric"] != metric:
        return None
    saved = run["dir"] / ".hydra" / "config.yaml"
    config = OmegaConf.load(saved) if saved.is_file() else OmegaConf.create()
    params = {k: run["hparams"].get(k, OmegaConf.select(config, k, default=None)) for k in space}
    if not all(v is not None and fits(space[k], v) for k, v in params.items()):
        return None
    where = str(run["dir"].resolve())
    return optuna.trial.create_trial(
        params=params,
        distributions=space,
        value=run["objective"]["value"],
        system_attrs={IMPORTED_ATTR: where},
        user_attrs={"imported_from": where, "run_dir": where},
    )


def import_runs(
    study: optuna.Study, folders: list[Path], space: dict[str, BaseDistribution], metric: str, timeout: float
) -> None:
    """Add the completed runs under `folders` that fit (trial_of_run) and are not in the study yet."""
    known = {t.system_attrs.get(IMPORTED_ATTR) for t in study.get_trials(deepcopy=False)}
    added, skipped = 0, []
    for folder in folders:
        if not folder.is_dir():
            raise UserError(
                f"hydra.sweeper.warm_start_from: {folder} is not a folder. Give folders of finished runs, e.g. "
                f"multirun/2026-11-29/12-00-00 or another study's multirun/<study_name>."
            )
        for run in load_runs(folder):
            if (
                str(run["dir"].resolve()) in known
                or run["status"] != Status.COMPLETED
                or run.get("confirms") is not None
            ):
                continue
            trial = trial_of_run(run, space, metric)
            if trial is None:
                skipped.append(run["name"])
                continue
            retrying(functools.partial(study.add_trial, trial), "add a trial", timeout)
            added += 1
    log.info(
        f"warm start: {added} finished runs added to the study as trials (hydra.sweeper.warm_start_from)"
        + (f"; {len(skipped)} left out (another objective, or parameters outside the search space)" if skipped else "")
    )
