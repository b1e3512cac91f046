"""One training job: check the config, build the components, train, test, record, return the outcome.

`main` is what `src/train.py` calls for every run and every trial of a search. It reads top to bottom:
the trainer and its components are built from the config, trained and tested (Trainer.run), and what happened
is recorded (record.py). In a search by the project's sweeper the job also knows its trial (search/trial.py),
one of the trainer's callbacks: it reports after every epoch and stops the run when the pruner says so.

Every job returns an `Outcome` (status.py): the sweeper tells the study from it alone. Outside a search, an
outcome other than completed is an exit status: a user's mistake is one paragraph (exit 2), a run that
diverged or whose disk filled up exit 3, Ctrl-C or SIGTERM writes a checkpoint and exits 130. In a search those
are the trial's outcome and the search goes on, except what stops the worker itself: a full disk or a study
database that stays away (raised, for its sweeper to say).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashionlab import checkpoint, record, signals
from fashionlab.callbacks import Callback
from fashionlab.config import StopWorker, UserError, check_config
from fashionlab.files import DISK_FULL, disk_full, quiet_disk_full_in_threads
from fashionlab.models import build_model
from fashionlab.runs import read_status
from fashionlab.search import confirms, preemption, trial_number
from fashionlab.search.launchers import in_process, threads_per_job
from fashionlab.status import EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, Outcome, Status, fail
from fashionlab.training import Trainer

log = logging.getLogger(__name__)


def main(cfg: DictConfig) -> Outcome:
    """Run one job and say how it ended."""
    hc = HydraConfig.get()
    in_search = hc.mode == RunMode.MULTIRUN
    quiet_disk_full_in_threads()
    if in_search and not in_process(hc.launcher):  # a worker process of a search: signals never raise here
        preemption.install()  # SLURM's USR2 too: the trainer answers it when it trains
        signals.clear()  # what an earlier job of this process was told is not for this one
    try:
        try:
            check_config(cfg)  # before torch is imported: a typo answers at once
            return train(cfg)
        except InstantiationException as e:  # a _target_ refused, given keys it does not take, or its own check
            if isinstance(e.__cause__, UserError):
                raise e.__cause__ from None
            message = " ".join(str(e).split())
            raise UserError(
                f"{message} Check the _target_ and the keys of that config "
                f"group (python src/train.py --cfg job shows them)."
            ) from None
    except StopWorker as e:  # a full disk, a study database that stays away
        if in_search:
            raise  # the worker stops: its sweeper says why
        fail(str(e), EXIT_NOT_COMPLETED)
    except UserError as e:
        if not in_search:
            fail(str(e))
        log.error(f"trial failed: {e}")
        return Outcome(Status.FAILED, error=str(e))
    except KeyboardInterrupt:  # a signal outside the training loop (which stops cleanly by itself)
        if not in_search:
            sys.exit(EXIT_INTERRUPTED)
        return Outcome(Status.INTERRUPTED, error="interrupted before or after training")
    except Exception as e:
        if not in_search:
            raise
        log.exception("trial failed with an exception")
        return Outcome(Status.FAILED, error=f"{type(e).__name__}: {e}")


def build(
    cfg: DictConfig,
    trainer: Trainer,
    run_dir: Path,
    hparams: dict | None = None,
    notes: dict[str, str] | None = None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Data (on the trainer's device), model, optimizer, schedule, logger and callbacks, handed to the trainer.

    `hparams` (what the run chose) and `notes` (config and environment) go to the logger's HPARAMS and TEXT.
    """
    data = instantiate(cfg.data, augment=instantiate(cfg.augment) if cfg.get("augment") else None)
    data.setup(trainer.device)
    choices = HydraConfig.get().runtime.choices
    model = build_model(
        cfg.model, data.shape, data.classes, f"model={choices.get('model')}, data={choices.get('data')}"
    )
    logger = instantiate(cfg.logging)
    logger.run_hparams, logger.run_notes = dict(hparams or {}), dict(notes or {})
    try:  # torch checks the values itself (e.g. nesterov without momentum): say which group to fix
        scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
        trainer.setup(
            data,
            model,
            instantiate(cfg.optimizer),
            scheduler,
            logger,
            run_dir / "checkpoints",
            cfg.objective,
            callbacks,
            instantiate(cfg.loss) if cfg.get("loss") else None,
        )
    except (TypeError, ValueError) as e:
        raise UserError(
            f"The optimizer or scheduler config is not valid: {e}. Fix the optimizer.* or "
            f"scheduler.* override (python src/train.py --cfg job shows the values)."
        ) from None


def with_objectives(cfg: DictConfig, outcome: Outcome, metrics: dict[str, float]) -> Outcome:
    """A completed run of a multi-objective search returns every objective: the first is its best value over
    the epochs, the others the run's last values (model/params, model/latency_ms, or a metric of the last epoch)."""
    objectives = record.objectives(cfg)
    if not objectives or outcome.status != Status.COMPLETED:
        return outcome
    missing = [o["metric"] for o in objectives[1:] if o["metric"] not in metrics]
    if missing:
        raise UserError(
            f"objective.metrics names {', '.join(missing)}, which this run does not record. It records: "
            f"{', '.join(sorted(metrics))}. Use one of those (e.g. model/params or model/latency_ms)."
        )
    values = (outcome.value, *(metrics[o["metric"]] for o in objectives[1:]))
    return dataclasses.replace(outcome, values=tuple(float(v) for v in values if v is not None))


def train(cfg: DictConfig) -> Outcome:
    start = time.time()  # the job's own time: building, training, testing, recording
    hc = cast(DictConfig, HydraConfig.get())  # a DictConfig at run time, typed as the dataclass it was made of
    run_dir, in_search = Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN
    trial = None
    if trial_number(hc) is not None:  # the project's sweeper launched this job as a trial
        from fashionlab.search.trial import open_trial  # Optuna: only in a search's trial

        trial = open_trial(hc, cfg)
    trainer = instantiate(cfg.trainer)
    trainer.prepare(cfg.seed, threads=threads_per_job(hc))
    trainer.stops = preemption.caught()
    # A job of the sweeper (a trial, a confirmation run) whose folder holds a checkpoint already was started before:
    # SLURM requeued it (a preemption, a time limit, scontrol requeue). It continues that checkpoint.
    requeued = (
        not cfg.resume and (trial or confirms(hc) is not None) and (run_dir / "checkpoints" / "last.pt").is_file()
    )
    resume = bool(cfg.resume) or requeued
    chosen = record.hparams(cfg, hc, searched=list(trial.params) if trial else [])
    notes = {} if resume else record.write_run_info(run_dir, cfg)
    build(cfg, trainer, run_dir, chosen, notes, [trial] if trial else [])
    if requeued:
        log.info(f"the job of {run_dir} started again (SLURM requeued it): it continues its checkpoint")
    if resume:
        checkpoint.restore_trainer(trainer)
        p = trainer.state
        if p.epoch >= trainer.max_epochs and read_status(run_dir) == Status.COMPLETED:
            log.info(
                f"{run_dir} is complete ({p.epoch} of {trainer.max_epochs} epochs, tested): nothing to do, nothing "
                f"changed. To train it longer: python src/train.py resume={shlex.quote(str(run_dir))} "
                f"trainer.max_epochs={2 * trainer.max_epochs}"
            )
            return Outcome(Status.COMPLETED, p.best.value if p.best else None, p.epoch)
        record.save_config(run_dir, cfg, hc)  # only now: a resume that fails changes nothing in the run folder
        log.info(f"resuming {run_dir} at epoch {p.epoch + 1}, step {p.step}")

    try:
        outcome = with_objectives(cfg, trainer.run(), trainer.state.metrics)
    except BaseException as e:
        if isinstance(e, OSError) and e.errno in DISK_FULL:  # nothing more fits there: say what survived
            raise disk_full(run_dir, e) from None
        failed = Outcome(Status.FAILED, epochs=trainer.state.epoch, error=f"{type(e).__name__}: {e}")
        record.write_metrics(run_dir, cfg, hc, trainer.state, failed, start, chosen, trial)
        raise
    record.write_metrics(run_dir, cfg, hc, trainer.state, outcome, start, chosen, trial, trainer.data.classes)
    if outcome.status == Status.INTERRUPTED and in_search:  # SLURM's signals: requeued, ended, or past its requeues
        decided = preemption.after_interrupt(trainer.stop_signal, hc, outcome)
        if decided is not outcome:
            outcome = decided
            record.write_metrics(run_dir, cfg, hc, trainer.state, outcome, start, chosen, trial, trainer.data.classes)

    metric = cfg.objective.metric
    if outcome.status == Status.COMPLETED:
        m = trainer.state.metrics
        log.info(
            f"test/loss {m['test/loss']:.4f}  test/acc {m['test/acc']:.4f}  (the weights of epoch "
            f"{trainer.state.tested_epoch}, the best {metric}; {run_dir})"
        )
    elif outcome.status == Status.PRUNED:  # the checkpoint of that epoch is written; no test: the trial was losing
        log.info(
            f"trial {trial.number if trial else '?'} pruned after epoch {outcome.epochs}: {metric} {outcome.value:.4f}"
        )
    elif outcome.status == Status.INTERRUPTED:
        log.warning(
            f"{outcome.error}; checkpoint written. Resume with:\n"
            f"  python src/train.py resume={shlex.quote(str(run_dir))}"
        )
        if not in_search:
            sys.exit(EXIT_INTERRUPTED)
    else:
        log.error(f"{outcome.status}: {outcome.error}")
        if not in_search:
            fail(str(outcome.error), EXIT_NOT_COMPLETED)
    return outcome
