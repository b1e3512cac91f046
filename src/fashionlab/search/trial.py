"""The job's side of a search: its trial, which reports after every epoch and stops the run when the pruner says so.

The project's sweeper gives each job its trial number through `hydra.job.env_set.FASHIONLAB_TRIAL`; that reaches
the job under every launcher (basic, joblib, submitit, SLURM), and the rest (storage, study name, pruner) is in
the job's own `hydra.sweeper` config, which study.open_study turns into the same study object on both sides. The
job reports `objective.metric` after every epoch (step = epoch) and stops with Outcome(PRUNED) when the pruner says
so. A run outside such a search has no trial.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import optuna
from omegaconf import DictConfig

from fashionlab.callbacks import Callback, StopRun
from fashionlab.search import optuna_internals as private
from fashionlab.search import trial_number
from fashionlab.search.storage import Heartbeat, retrying
from fashionlab.search.study import CURVE_ATTR, continued, open_study, reported
from fashionlab.status import Outcome, Status

if TYPE_CHECKING:
    from fashionlab.training import Trainer


class Trial(Callback):
    """The job's handle on its Optuna trial: reports after each epoch, stops the run when the pruner says so."""

    def __init__(self, study: optuna.Study, number: int, metric: str, max_epochs: int, timeout: float):
        self.study_name, self.number, self.metric, self.timeout = study.study_name, number, metric, timeout
        self.max_epochs = max_epochs
        self.trial_id = retrying(lambda: private.trial_id_of_number(study, number), f"find trial {number}", timeout)
        self._trial = retrying(lambda: private.open_trial(study, self.trial_id), f"open trial {number}", timeout)
        self.study, self.multi = study, len(study.directions) > 1
        self.params = dict(self._trial.params)
        # A retry that continues an earlier trial's checkpoint takes its reported values along (on_fit_start).
        earlier = continued(private.frozen(study, self._trial))
        self.inherited = {} if earlier is None else reported(private.trial_by_number(study, earlier))
        self._heartbeat = Heartbeat(private.storage(study), [self.trial_id])

    def on_fit_start(self, trainer: Trainer) -> None:
        self._heartbeat.__enter__()
        if trainer.resumed:  # the epochs the earlier trial trained, as it reported them: the pruner judges alike
            done = {e: v for e, v in self.inherited.items() if e <= trainer.state.epoch}
            for e, v in sorted(done.items()):
                retrying(
                    functools.partial(self._report, v, e), f"report epoch {e} of trial {self.number}", self.timeout
                )

    def _report(self, value: float, epoch: int) -> None:
        if self.multi:  # Trial.report refuses: the first objective's curve, as an attribute (the pruner's view)
            curve = {**reported(private.frozen(self.study, self._trial)), epoch: value}
            private.set_system_attr(self.study, self._trial, CURVE_ATTR, {str(e): v for e, v in curve.items()})
        else:
            self._trial.report(value, step=epoch)

    def _should_prune(self) -> bool:
        if self.multi:
            trial = private.first_objective(private.frozen(self.study, self._trial), reported)
            return self.study.pruner.prune(private.FirstObjective(self.study, reported), trial)  # type: ignore[arg-type]
        return self._trial.should_prune()

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Report objective.metric for this epoch; stop the run as PRUNED if the pruner says it is losing.

        Not after the last epoch: the work is done, and a finished trial is worth its full result.
        """
        value, epoch = metrics.get(self.metric), trainer.state.epoch
        if value is None:
            return
        retrying(lambda: self._report(value, epoch), f"report epoch {epoch} of trial {self.number}", self.timeout)
        if epoch < self.max_epochs and retrying(
            self._should_prune, f"ask the pruner about trial {self.number}", self.timeout
        ):
            raise StopRun(Outcome(Status.PRUNED, value, epoch))

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        self._heartbeat.__exit__(None, None, None)


def open_trial(hc: DictConfig, cfg: DictConfig) -> Trial:
    """The job's trial (trial_number(hc) is not None)."""
    number = trial_number(hc)
    assert number is not None, "open_trial is for a job the project's sweeper launched"
    # The job only reports and asks: a neutral sampler, since Trial() hands every new trial to the sampler.
    study = open_study(hc.sweeper, sampler=optuna.samplers.RandomSampler())
    return Trial(study, number, cfg.objective.metric, cfg.trainer.max_epochs, hc.sweeper.storage_timeout)
