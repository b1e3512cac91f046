"""Telling the study how a trial ended: from the job's Outcome alone, or from why there is none.

- completed: COMPLETE with its value (its values, for several objectives);
- pruned: PRUNED (Optuna keeps its last reported value; not a failure);
- diverged or failed: FAIL, the trial's own failure (it counts towards n_trials and the failure budget);
- interrupted (Ctrl-C, SIGTERM, SLURM cancelling it): FAIL "interrupted", queued again with the same parameters
  so that the next trial asked continues its checkpoint; it does not count towards n_trials;
- lost (its process died, its SLURM job ended without a result): FAIL "lost" and queued again once, as a dead
  worker's trial is; lost a second time, it is a failure of its own.
A trial asked but not needed (another worker took the study's last trial) is FAIL "not needed".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fashionlab.files import DiskFull, redact
from fashionlab.search import optuna_internals as private
from fashionlab.search.storage import StorageLost, retrying
from fashionlab.search.study import CONTINUES_ATTR, FAILURE_ATTR, count_trials, reported
from fashionlab.status import Outcome, Status

log = logging.getLogger(__name__)
ERROR_ATTR = "fashionlab:error"  # a failed trial's error, as its job or the launcher said it (first line)
LOST_ATTR = "fashionlab:lost"  # how often the trials this one continues were lost (a retry is made once)
LOST = "lost"
NOT_NEEDED = "not needed: the study reached n_trials"


class JobLost(Exception):
    """A trial's job ended without an outcome: its process died, or SLURM cancelled, killed or lost it."""


def state_of(outcome: Outcome, multi: bool) -> tuple[TrialState, Any, str | None]:
    """(state, value or values to tell, failure reason) for a job's Outcome."""
    if outcome.status == Status.COMPLETED:
        return TrialState.COMPLETE, (list(outcome.values) if multi else outcome.value), None
    if outcome.status == Status.PRUNED:
        return TrialState.PRUNED, None, None
    return TrialState.FAIL, None, str(outcome.status)  # diverged, failed or interrupted


def outcome_of(result: Any) -> Outcome:
    """A job's return value as an Outcome: a task function of the user's own may return a plain number."""
    if isinstance(result, Outcome):
        return result
    value = float(result)
    return Outcome(Status.COMPLETED if math.isfinite(value) else Status.FAILED, value)


def tell(
    study: optuna.Study, trial: optuna.Trial, result: Callable[[], Any], stopping: bool, timeout: float
) -> tuple[TrialState, float | None]:
    """Tell the study how trial's job ended: `result()` returns what the job returned, or raises what the job
    (or its launch) raised. Returns the state told and the value to show (a pruned trial's last report)."""
    try:
        outcome = outcome_of(result())
    except DiskFull as e:  # the next trial would hit the same disk: fail this one; the worker stops
        fail(study, trial, f"disk full: {e}", timeout)
        raise
    except StorageLost:
        raise
    except BaseException as e:  # noqa: BLE001 - the job died or its launch failed: no outcome, however it ended
        said = redact(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        reason = str(Status.INTERRUPTED) if stopping else LOST
        log.warning(f"trial {trial.number} {reason}: {said}")
        fail(study, trial, reason, timeout, error=said)
        return TrialState.FAIL, None
    state, values, failure = state_of(outcome, len(study.directions) > 1)
    if failure is not None:
        fail(study, trial, failure, timeout, error=outcome.error)
        return TrialState.FAIL, None
    frozen = retrying(lambda: finish(study, trial, state, values), f"record trial {trial.number}", timeout)
    if frozen.state != state:
        log.warning(
            f"trial {trial.number} had already ended as {frozen.state.name} (marked by another worker while the "
            f"database was unreachable?)"
        )
    if frozen.values:
        return frozen.state, frozen.values[0]
    curve = reported(frozen)  # a pruned trial of a multi-objective study keeps no value: its last report
    return frozen.state, curve[max(curve)] if curve else None


def fail(study: optuna.Study, trial: optuna.Trial, reason: str, timeout: float, error: str | None = None) -> None:
    """FAIL with the reason (and the error, if any); an interrupted trial is queued again, a lost one once."""
    lost_before = int(trial.user_attrs.get(LOST_ATTR, 0))
    if reason == LOST and lost_before >= 1:  # lost again: a failure of its own, not retried for ever
        reason, error = str(Status.FAILED), f"lost twice: {error or 'no outcome'}"
    try:
        retrying(
            lambda: private.set_system_attr(study, trial, FAILURE_ATTR, reason), f"record trial {trial.number}", timeout
        )
        if error:
            retrying(lambda: private.set_system_attr(study, trial, ERROR_ATTR, redact(error)[:500]), "record", timeout)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # it ended already (failed as stale by another worker)
    except DiskFull:
        log.warning(f"trial {trial.number} could not be recorded as failed: the study's disk is full too")
        return
    retrying(lambda: finish(study, trial, TrialState.FAIL), f"record trial {trial.number}", timeout)
    if reason in (str(Status.INTERRUPTED), LOST):  # queued again: the next trial asked continues its checkpoint
        attrs = {**trial.user_attrs, CONTINUES_ATTR: trial.number}
        if reason == LOST:
            attrs[LOST_ATTR] = lost_before + 1
        retrying(lambda: study.enqueue_trial(trial.params, user_attrs=attrs), f"queue trial {trial.number}", timeout)


def finish(study: optuna.Study, trial: optuna.Trial, state: TrialState, values: Any = None) -> FrozenTrial:
    """study.tell, without GridSampler's `study.stop()` on the grid's last point: outside `optimize` that raises
    (after the trial is stored), which crashed the released sweeper; this one stops by n_trials."""
    try:
        study.tell(trial, values, state=state, skip_if_finished=True)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
    return private.frozen(study, trial)


def surplus(trials: list[FrozenTrial], number: int, n_trials: int) -> bool:
    """Two workers that both saw one trial left both asked for it: the higher trial number yields."""
    return count_trials(trials, below=number)[0] >= n_trials


def unlaunched(trials: list[FrozenTrial], worker: str) -> list[FrozenTrial]:
    """This worker's trials still RUNNING after its loop: asked for but never launched (a signal came first)."""
    return [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("worker") == worker]
