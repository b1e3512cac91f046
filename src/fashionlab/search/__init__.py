"""The search: the project's Optuna sweeper (loop.py and the modules it reads top to bottom) and the job's side of
it (trial.py). What every job may ask, whether it runs in a search at all, is here and costs nothing to import:
the sweeper tells a job its trial (or the trial a confirmation run repeats) through `hydra.job.env_set`, which
reaches the job under every launcher (basic, joblib, submitit, SLURM).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

TRIAL_ENV = "FASHIONLAB_TRIAL"  # the trial a job runs
CONFIRMS_ENV = "FASHIONLAB_CONFIRMS"  # the trial a confirmation run repeats


def trial_number(hc: DictConfig) -> int | None:
    """The trial this job runs, if the project's sweeper launched it as one."""
    number = OmegaConf.select(hc, f"job.env_set.{TRIAL_ENV}", default=None)
    return None if number is None else int(number)


def confirms(hc: DictConfig) -> int | None:
    """The trial this job repeats, if it is a confirmation run."""
    number = OmegaConf.select(hc, f"job.env_set.{CONFIRMS_ENV}", default=None)
    return None if number is None else int(number)
