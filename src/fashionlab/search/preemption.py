"""A trial's job on SLURM (hydra/launcher=slurm, through submitit): what it does when SLURM signals it.

- USR2, SLURM's warning before a preemption or the time limit (`#SBATCH --signal=USR2@signal_delay_s`): the
  trainer finishes its batch and writes a checkpoint; then submitit's own handler requeues the job, which starts
  again later as the same trial in the same folder and continues that checkpoint (run.py). A trial requeued more
  than `hydra.launcher.max_num_timeout` times (SLURM_RESTART_COUNT counts them, whatever the cause) is failed with
  that reason instead, and the search goes on.
- SIGTERM, SLURM ending the job (`scancel`, `scontrol requeue`, a time limit without warning, a node shut down):
  the checkpoint at the batch, then the job exits without a result. If SLURM requeued it, it continues that
  checkpoint when it starts again; if SLURM cancelled it, the sweeper sees the job end without a result and fails
  the trial as lost, and its retry continues the checkpoint (search/tell.py). No result is written either way: a
  result of a job that SLURM is requeuing would be taken for the trial's last word.
- SIGINT, the sweeper asking its trials to stop (stopping.py): an interrupted trial, as under any launcher.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fashionlab import signals
from fashionlab.status import Outcome, Status

log = logging.getLogger(__name__)
EXIT_REQUEUED = 143  # the exit status of a job that SLURM ends with SIGTERM
_submitit: Any = None  # submitit's USR2 handler, kept when install() puts the recording one in its place


def on_slurm() -> bool:
    """Whether this job is a trial's job that submitit started on SLURM."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def caught() -> tuple[int, ...]:
    """The signals the trainer answers with a checkpoint at its batch: SLURM's USR2 too, in a SLURM trial's job."""
    return (*signals.STOPS, signal.SIGUSR2) if on_slurm() else signals.STOPS


def install() -> None:
    """In a worker process of a search: these signals recorded from now on, never raised (signals.py); the trainer
    answers them when it trains. Submitit's own USR2 handler is kept: it requeues the job after the checkpoint."""
    global _submitit
    if on_slurm() and _submitit is None:
        _submitit = signal.getsignal(signal.SIGUSR2)
    signals.install("job", caught())


def after_interrupt(signum: int | None, hc: DictConfig, outcome: Outcome) -> Outcome:
    """What an interrupted trial's job on SLURM does, its checkpoint written: hand USR2 to submitit (which requeues
    the job and exits), exit without a result on SIGTERM, or return the outcome (SIGINT, or past the requeues)."""
    if not on_slurm() or outcome.status != Status.INTERRUPTED:
        return outcome
    if signum == signal.SIGTERM:
        log.warning(f"SLURM ended the job (SIGTERM), {outcome.error}: checkpoint written; a requeued job continues it")
        logging.shutdown()
        sys.exit(EXIT_REQUEUED)
    if signum != signal.SIGUSR2:
        return outcome
    requeues = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    bound = int(OmegaConf.select(hc, "launcher.max_num_timeout", default=0) or 0)
    if requeues >= bound:
        return Outcome(
            Status.FAILED,
            epochs=outcome.epochs,
            error=(
                f"SLURM preempted or timed out this trial's job {requeues + 1} times, and "
                f"hydra.launcher.max_num_timeout={bound} requeues are allowed: raise it, or the time limit "
                f"(hydra.launcher.timeout_min); its checkpoint is kept"
            ),
        )
    handler: Any = _submitit or signal.getsignal(signal.SIGUSR2)
    said = f"{outcome.error}: checkpoint written; requeue {requeues + 1} of {bound}"
    log.warning(f"SLURM's USR2 (preemption or time limit), {said}")
    if callable(handler):
        handler(signal.SIGUSR2, None)  # checkpoints the submission, requeues the job, and exits
    return outcome
