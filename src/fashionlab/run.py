"""One training job: check the config, build the components, train, test, record, return the objective.

`main` is what `src/train.py` calls for every run and every trial of a search. It reads top to bottom:
the trainer and its components are built from the config, trained, tested, and what happened is recorded
(record.py). In a search by the project's sweeper the job also knows its trial (search.py): it reports
after every epoch and stops when the pruner says so. How a job can end, and the exit status of each, is in
status.py: a user's mistake is one paragraph (exit 2, or a failed trial that does not stop a search); a run
that diverged is exit 3 (a failed trial in a search); Ctrl-C writes a checkpoint and exits 130.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

from fashionlab import record, search
from fashionlab.config import UserError, check_config
from fashionlab.status import EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, Status, fail
from fashionlab.study import StorageLost

log = logging.getLogger(__name__)


def main(cfg: DictConfig) -> float | search.Pruned:
    """Run one job and return its objective: NaN marks a failed trial, `Pruned` a pruned one."""
    in_search = HydraConfig.get().mode == RunMode.MULTIRUN
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
    except StorageLost:
        raise  # the study's database is gone: the worker stops, and its sweeper says why
    except UserError as e:
        if not in_search:
            fail(str(e))
        log.error(f"trial failed: {e}")
    except KeyboardInterrupt:  # a signal (training.Interrupted: checkpoint written, resume command printed)
        sys.exit(EXIT_INTERRUPTED)  # a search stops here too
    except Exception:
        if not in_search:
            raise
        log.exception("trial failed with an exception")
    return float("nan")


def build(cfg: DictConfig, trainer, run_dir: Path) -> None:
    """Data (on the trainer's device), model, optimizer, schedule and logger, as the config says, handed to it."""
    data = instantiate(cfg.data)
    data.setup(trainer.device)
    model, logger = instantiate(cfg.model), instantiate(cfg.logging)
    try:  # torch checks the values itself (e.g. nesterov without momentum): say which group to fix
        scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
        trainer.setup(
            data, model, instantiate(cfg.optimizer), scheduler, logger, run_dir / "checkpoints", cfg.objective
        )
    except (TypeError, ValueError) as e:
        raise UserError(
            f"The optimizer or scheduler config is not valid: {e}. Fix the optimizer.* or "
            f"scheduler.* override (python src/train.py --cfg job shows the values)."
        ) from None


def train(cfg: DictConfig) -> float | search.Pruned:
    from fashionlab.training import Diverged, Interrupted

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    trial = search.open_trial(hc, cfg)  # None unless the project's sweeper launched this job
    trainer = instantiate(cfg.trainer)
    trainer.prepare(cfg.seed, threads=search.threads_per_job(hc))
    build(cfg, trainer, run_dir)
    if cfg.resume:
        trainer.restore()
        record.save_config(run_dir, cfg, hc)  # only now: a resume that fails changes nothing in the run folder
        log.info(f"resuming {run_dir} at epoch {trainer.progress.epoch + 1}, step {trainer.progress.step}")
    if trial is not None:
        trainer.on_epoch_end = trial.report
    chosen = record.hparams(cfg, hc, searched=list(trial.params) if trial else [])

    logger = trainer.logger
    logger.open(purge_step=trainer.progress.step + 1 if cfg.resume else None)
    status, error, pruned, start = Status.FAILED, None, None, time.time()
    try:
        with trainer.stop_on_signals(), trial.heartbeat() if trial else nullcontext():
            if not cfg.resume:
                logger.log_start(trainer.model, trainer.data, record.write_run_info(run_dir, cfg))
            trainer.fit()
            test = trainer.test()
            logger.log_features(trainer.model, trainer.data, trainer.progress.step)
        status = Status.COMPLETED
        log.info(f"test/loss {test['test/loss']:.4f}  test/acc {test['test/acc']:.4f}  ({run_dir})")
    except search.Prune as e:  # the checkpoint of that epoch is written; no test: the trial was losing
        status, pruned = Status.PRUNED, search.Pruned(e.epoch, e.value)
        log.info(f"trial {trial.number} pruned after epoch {e.epoch}: {cfg.objective.metric} {e.value:.4f}")
    except Diverged as e:
        status, error = Status.DIVERGED, str(e)
        log.error(f"diverged: {e}")
    except Interrupted as e:
        status, error = Status.INTERRUPTED, str(e)
        log.warning(
            f"interrupted by {e}; checkpoint written. Resume with:\n"
            f"  python src/train.py resume={shlex.quote(str(run_dir))}"
        )
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        if status != Status.INTERRUPTED:  # the HPARAMS row is written once, when the run has an outcome
            logger.log_end(record.tensorboard_hparams(chosen, status), ok=status.has_result)
        logger.close()
        record.write_metrics(run_dir, cfg, hc, trainer.progress, status, error, start, chosen, trial)

    if pruned is not None:
        return pruned
    if status != Status.COMPLETED:
        if hc.mode != RunMode.MULTIRUN:
            fail(error, EXIT_NOT_COMPLETED)
        return float("nan")
    return trainer.progress.best.value if trainer.progress.best else float("nan")
