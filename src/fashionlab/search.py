"""The job's side of a search: which trial it runs, reporting to the study, pruning, threads per job.

The project's sweeper (src/hydra_plugins/fashionlab_sweeper) gives each job its trial number through
`hydra.job.env_set.FASHIONLAB_TRIAL`; that reaches the job under every launcher (basic, joblib, submitit),
and the rest (storage, study name, pruner) is in the job's own `hydra.sweeper` config. So the job opens the
same study, reports `objective.metric` after every epoch (step = epoch) and asks the pruner whether to stop.
A run outside such a search has no trial, and none of this happens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import optuna
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fashionlab import study as studies
from fashionlab.study import retrying

TRIAL_ENV = "FASHIONLAB_TRIAL"
# Targets the search itself builds (the pruner), whatever the user's whitelist for components says.
SEARCH_WHITELIST = ("optuna.pruners.*", "optuna.samplers.*", "hydra_plugins.hydra_optuna_sweeper.*")


class Prune(Exception):
    """The pruner stopped this trial after an epoch (raised from Trainer.on_epoch_end, after the checkpoint)."""

    def __init__(self, epoch: int, value: float):
        super().__init__(f"pruned after epoch {epoch} ({value:.4f})")
        self.epoch, self.value = epoch, value


@dataclass(frozen=True)
class Pruned:
    """What a pruned job returns to the sweeper, which records the trial as PRUNED (not failed)."""

    epoch: int
    value: float


class Trial:
    """The job's handle on its Optuna trial."""

    def __init__(self, study: optuna.Study, storage, number: int, metric: str, max_epochs: int, timeout: float):
        self.storage = storage  # None for a study in memory
        self.study_name, self.number, self.metric, self.timeout = study.study_name, number, metric, timeout
        self.max_epochs = max_epochs
        self.trial_id = retrying(
            lambda: study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number),
            f"find trial {number}",
            timeout,
        )
        self._trial = retrying(lambda: optuna.Trial(study, self.trial_id), f"open trial {number}", timeout)
        self.params = dict(self._trial.params)

    def report(self, epoch: int, metrics: dict) -> None:
        """Report objective.metric for this epoch; raise Prune if the pruner says this trial is losing.

        Not after the last epoch: the work is done, and a finished trial is worth its full result.
        """
        value = metrics.get(self.metric)
        if value is None:
            return
        retrying(
            lambda: self._trial.report(value, step=epoch), f"report epoch {epoch} of trial {self.number}", self.timeout
        )
        if epoch < self.max_epochs and retrying(
            self._trial.should_prune, f"ask the pruner about trial {self.number}", self.timeout
        ):
            raise Prune(epoch, value)

    def heartbeat(self) -> studies.Heartbeat:
        return studies.Heartbeat(self.storage, [self.trial_id])


def open_trial(hc, cfg) -> Trial | None:
    """The trial this job runs, if the fashionlab sweeper launched it; None otherwise."""
    number = OmegaConf.select(hc, f"job.env_set.{TRIAL_ENV}", default=None)
    if number is None:
        return None
    s = hc.sweeper
    storage = studies.open_storage(s.storage, s.heartbeat_interval, s.grace_period)
    pruner = instantiate(s.pruner, _execution_whitelist_=SEARCH_WHITELIST)
    # The job only reports and asks: a neutral sampler, since Trial() hands every new trial to the sampler.
    study = retrying(
        lambda: studies.load_study(s.study_name, storage, pruner=pruner, sampler=optuna.samplers.RandomSampler()),
        "load the study",
        s.storage_timeout,
    )
    return Trial(study, storage, int(number), cfg.objective.metric, cfg.trainer.max_epochs, s.storage_timeout)


def threads_per_job(hc) -> int | None:
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


def parallel_jobs(launcher) -> int:
    """How many trials the launcher runs at once: the sweeper asks the study for that many at a time."""
    n = (
        OmegaConf.select(launcher, "n_jobs", default=None)
        or OmegaConf.select(launcher, "array_parallelism", default=None)
        or 1
    )
    n = int(n)
    return n if n > 0 else max(1, (os.cpu_count() or 1) + 1 + n)
