"""The job's side of a search, and what it shares with the sweeper: the study, its trial, pruning, threads.

The project's sweeper (src/hydra_plugins/fashionlab_optuna_sweeper) gives each job its trial number through
`hydra.job.env_set.FASHIONLAB_TRIAL`; that reaches the job under every launcher (basic, joblib, submitit),
and the rest (storage, study name, pruner) is in the job's own `hydra.sweeper` config, which `open_study`
turns into the same study object on both sides. The job reports `objective.metric` after every epoch
(step = epoch) and stops with Outcome(PRUNED) when the pruner says so. A run outside such a search has no trial.
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any, Literal

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashionlab import study as studies
from fashionlab.status import Outcome, Status
from fashionlab.study import retrying
from fashionlab.training import Callback, StopRun, Trainer

TRIAL_ENV = "FASHIONLAB_TRIAL"
# Targets the search itself builds (the pruner), whatever the user's whitelist for components says.
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
    """The study of `hydra.sweeper` config `s`, with its storage and pruner, as the sweeper and every job see it.

    With a `direction` (or a list: a multi-objective study), the study is created if it does not exist yet (the
    sweeper); without, it must exist (a job). The pruner is not stored in the study: each side builds it from
    the same config here.
    """
    storage = studies.open_storage(s.storage, s.heartbeat_interval, s.grace_period, stale_trial_callback)
    pruner = instantiate(s.pruner, _execution_whitelist_=SEARCH_WHITELIST)
    if direction is None:
        return retrying(
            lambda: studies.load_study(s.study_name, storage, pruner=pruner, sampler=sampler),
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
        studies.remember_in_memory(study)
    return study


class FirstObjective:
    """A multi-objective study as a pruner sees it. Optuna's pruners judge one objective (they read
    `study.direction`), and `Trial.report` refuses multi-objective trials (optuna #3450). Here the job records
    the first objective after each epoch as a trial attribute (studies.CURVE_ATTR: not as intermediate values,
    which TPE's multi-objective sampling cannot rank), and asks the pruner with this view of the study: its
    first direction, and its trials with those values as their intermediate values. Successive halving and
    the median and percentile pruners work so; Hyperband, which builds studies of its own, is refused."""

    def __init__(self, study: optuna.Study):
        self._study, self._storage = study, study._storage

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._study.directions[0]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[optuna.trial.FrozenTrial]:
        return [self.view(t) for t in self._study.get_trials(deepcopy=False, states=states)]

    @staticmethod
    def view(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        seen = copy.copy(trial)
        seen.intermediate_values = studies.reported(trial)
        return seen


class Trial(Callback):
    """The job's handle on its Optuna trial: reports after each epoch, stops the run when the pruner says so."""

    def __init__(self, study: optuna.Study, number: int, metric: str, max_epochs: int, timeout: float):
        self.storage = study._storage
        self.study_name, self.number, self.metric, self.timeout = study.study_name, number, metric, timeout
        self.max_epochs = max_epochs
        self.trial_id = retrying(
            lambda: study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number),
            f"find trial {number}",
            timeout,
        )
        self._trial = retrying(lambda: optuna.Trial(study, self.trial_id), f"open trial {number}", timeout)
        self.study, self.multi = study, len(study.directions) > 1
        self.params = dict(self._trial.params)
        # A retry that continues an earlier trial's checkpoint takes its reported values along (on_fit_start).
        earlier = studies.continued(self.storage.get_trial(self.trial_id))
        self.inherited = {} if earlier is None else studies.reported(studies.trial_by_number(study, earlier))
        self._heartbeat = studies.Heartbeat(self.storage, [self.trial_id])

    def on_fit_start(self, trainer: Trainer) -> None:
        self._heartbeat.__enter__()
        if trainer.resumed:  # the epochs the earlier trial trained, as it reported them: the pruner judges alike
            done = {e: v for e, v in self.inherited.items() if e <= trainer.progress.epoch}
            for e, v in sorted(done.items()):
                retrying(
                    functools.partial(self._report, v, e), f"report epoch {e} of trial {self.number}", self.timeout
                )

    def _report(self, value: float, epoch: int) -> None:
        if self.multi:  # Trial.report refuses: the first objective's curve, as an attribute (FirstObjective)
            curve = {**studies.reported(self.storage.get_trial(self.trial_id)), epoch: value}
            self.storage.set_trial_system_attr(self.trial_id, studies.CURVE_ATTR, {str(e): v for e, v in curve.items()})
        else:
            self._trial.report(value, step=epoch)

    def _should_prune(self) -> bool:
        if self.multi:
            trial = FirstObjective.view(self.storage.get_trial(self.trial_id))
            return self.study.pruner.prune(FirstObjective(self.study), trial)  # type: ignore[arg-type]
        return self._trial.should_prune()

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Report objective.metric for this epoch; stop the run as PRUNED if the pruner says it is losing.

        Not after the last epoch: the work is done, and a finished trial is worth its full result.
        """
        value, epoch = metrics.get(self.metric), trainer.progress.epoch
        if value is None:
            return
        retrying(lambda: self._report(value, epoch), f"report epoch {epoch} of trial {self.number}", self.timeout)
        if epoch < self.max_epochs and retrying(
            self._should_prune, f"ask the pruner about trial {self.number}", self.timeout
        ):
            raise StopRun(Outcome(Status.PRUNED, value, epoch))

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        self._heartbeat.__exit__(None, None, None)


def open_trial(hc: DictConfig, cfg: DictConfig) -> Trial | None:
    """The trial this job runs, if the fashionlab sweeper launched it; None otherwise."""
    number = OmegaConf.select(hc, f"job.env_set.{TRIAL_ENV}", default=None)
    if number is None:
        return None
    # The job only reports and asks: a neutral sampler, since Trial() hands every new trial to the sampler.
    study = open_study(hc.sweeper, sampler=optuna.samplers.RandomSampler())
    return Trial(study, int(number), cfg.objective.metric, cfg.trainer.max_epochs, hc.sweeper.storage_timeout)


def threads_per_job(hc: DictConfig) -> int | None:
    """Torch threads when trainer.threads is null: the cores shared out among the trials that run at once."""
    from hydra.types import RunMode

    if hc.mode != RunMode.MULTIRUN:
        return None
    cpus = OmegaConf.select(hc.launcher, "cpus_per_task", default=None)
    if cpus:  # submitit (SLURM or local): the CPUs the job was given
        return int(cpus)
    if OmegaConf.select(hc.launcher, "n_jobs", default=None) is None:  # the basic launcher: one at a time
        return None
    at_once = parallel_jobs(hc.launcher)  # joblib
    return max(1, (os.cpu_count() or 1) // at_once) if at_once > 1 else None


def parallel_jobs(launcher: DictConfig) -> int:
    """How many trials the launcher runs at once: the sweeper asks the study for that many at a time."""
    n = (
        OmegaConf.select(launcher, "n_jobs", default=None)
        or OmegaConf.select(launcher, "array_parallelism", default=None)
        or 1
    )
    n = int(n)
    return n if n > 0 else max(1, (os.cpu_count() or 1) + 1 + n)
