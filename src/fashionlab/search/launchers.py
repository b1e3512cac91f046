"""What the search needs to know of a launcher: how many trials it runs at once, the threads each gets, whether
its jobs run in the sweeper's own process, whether they are SLURM jobs. Kept free of Optuna and torch: every run
asks threads_per_job, and a single run imports nothing of the search beyond this.
"""

from __future__ import annotations

import os

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fashionlab.search.hydra_internals import BASIC_LAUNCHER, JOBLIB_LAUNCHER, SLURM_LAUNCHER


def parallel_jobs(launcher: DictConfig) -> int:
    """How many trials the launcher runs at once: the sweeper keeps that many in flight."""
    n = (
        OmegaConf.select(launcher, "n_jobs", default=None)
        or OmegaConf.select(launcher, "array_parallelism", default=None)
        or 1
    )
    n = int(n)
    return n if n > 0 else max(1, (os.cpu_count() or 1) + 1 + n)


def threads_per_job(hc: DictConfig) -> int | None:
    """Torch threads when trainer.threads is null: the cores shared out among the trials that run at once."""
    if hc.mode != RunMode.MULTIRUN:
        return None
    cpus = OmegaConf.select(hc.launcher, "cpus_per_task", default=None)
    if cpus:  # submitit (SLURM or local): the CPUs the job was given
        return int(cpus)
    if OmegaConf.select(hc.launcher, "n_jobs", default=None) is None:  # the basic launcher: one at a time
        return None
    at_once = parallel_jobs(hc.launcher)  # joblib
    return max(1, (os.cpu_count() or 1) // at_once) if at_once > 1 else None


def in_process(launcher: DictConfig) -> bool:
    """Whether the launcher runs a job in the calling process and thread: the basic launcher, and joblib with one
    job at a time (joblib then runs it in place). Such a job takes signals in the sweeper's main thread."""
    target = launcher._target_
    return target == BASIC_LAUNCHER or (target == JOBLIB_LAUNCHER and parallel_jobs(launcher) == 1)


def is_slurm(launcher: DictConfig) -> bool:
    return launcher._target_ == SLURM_LAUNCHER
