"""The study, as the sweeper and every job see it: opened from `hydra.sweeper` with its storage and pruner, and
what its trials say (how many count towards n_trials, which failed by themselves, what each reported).

The pruner is not stored in the study: each side builds it from the same config here. The trial attributes the
project sets are named here; the journal file's heartbeat is journal.HEARTBEAT_ATTR.
"""

from __future__ import annotations

from typing import Any, Literal

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, TrialState

from fashionlab.search.storage import load_study, open_storage, remember_in_memory, retrying
from fashionlab.status import Status

FAILURE_ATTR = "fashionlab:failure"  # why a trial failed (a Status, or why it was not needed), set before FAIL
CURVE_ATTR = "fashionlab:curve"  # a multi-objective trial's first objective after each epoch (trial.FirstObjective)
IMPORTED_ATTR = "fashionlab:imported"  # a finished run added as a trial (warm_start_from): the run's folder
CONTINUES_ATTR = "fashionlab:continues"  # an interrupted trial's retry: the number of the trial it continues
OWN_FAILURES = (str(Status.DIVERGED), str(Status.FAILED))  # a trial's own: counted in n_trials and the budget
# Targets the search itself builds (the pruner, the sampler), whatever the user's whitelist for components says.
SEARCH_WHITELIST = ("optuna.pruners.*", "optuna.samplers.*", "hydra_plugins.hydra_optuna_sweeper.*")
Direction = Literal["maximize", "minimize"]
DIRECTIONS: dict[str, Direction] = {
    "max": "maximize",
    "min": "minimize",
    "maximize": "maximize",
    "minimize": "minimize",
}


def open_study(
    s: DictConfig,
    sampler: optuna.samplers.BaseSampler,
    direction: str | list[str] | None = None,
    stale_trial_callback: Any = None,
) -> optuna.Study:
    """The study of `hydra.sweeper` config `s`, with its storage and pruner.

    With a `direction` (or a list: a multi-objective study), the study is created if it does not exist yet (the
    sweeper); without, it must exist (a job).
    """
    storage = open_storage(s.storage, s.heartbeat_interval, s.grace_period, stale_trial_callback)
    pruner = instantiate(s.pruner, _execution_whitelist_=SEARCH_WHITELIST)
    if direction is None:
        return retrying(
            lambda: load_study(s.study_name, storage, pruner=pruner, sampler=sampler),
            "load the study",
            s.storage_timeout,
        )
    study = retrying(
        lambda: optuna.create_study(
            study_name=s.study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=[DIRECTIONS[d] for d in ([direction] if isinstance(direction, str) else direction)],
            load_if_exists=True,
        ),
        "open the study",
        s.storage_timeout,
    )
    if storage is None:  # in memory: the jobs, in this same process, find it here
        remember_in_memory(study)
    return study


def continued(trial: FrozenTrial) -> int | None:
    """The earlier trial this one takes over: a dead worker's (Optuna's retry sets `failed_trial`) or an
    interrupted or lost one (the sweeper queues it again with CONTINUES_ATTR). Its checkpoint is where this one
    goes on."""
    number = trial.system_attrs.get("failed_trial")
    return trial.user_attrs.get(CONTINUES_ATTR) if number is None else number


def count_trials(trials: list[FrozenTrial], below: int | None = None) -> tuple[int, int, int]:
    """(trials that count towards n_trials, of which finished, of which failed by themselves).

    A trial counts if it completed, was pruned, failed by itself, or is running. One that was interrupted
    or whose worker died does not: it is replaced (a dead one by its retry), so the study reaches n_trials.
    Nor does a finished run added as a trial (hydra.sweeper.warm_start_from): the study did not train it.
    `below`: count only the trials numbered below it.
    """
    trials = [t for t in trials if (below is None or t.number < below) and IMPORTED_ATTR not in t.system_attrs]
    own = [t for t in trials if own_failure(t)]
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)] + own
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return len(done) + len(running), len(done), len(own)


def reported(trial: FrozenTrial) -> dict[int, float]:
    """What the trial reported after each epoch: its intermediate values, or a multi-objective trial's curve."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    return {int(e): v for e, v in trial.system_attrs.get(CURVE_ATTR, {}).items()}


def own_failure(trial: FrozenTrial) -> bool:
    """A trial that failed by itself (diverged, raised): not one interrupted, not needed, or whose worker died."""
    return trial.state == TrialState.FAIL and trial.system_attrs.get(FAILURE_ATTR) in OWN_FAILURES


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except (ValueError, RuntimeError):  # no completed trial; a multi-objective study (a front, not one best)
        return None
