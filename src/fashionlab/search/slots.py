"""The trials in flight: each job a launch of its own, waited for and stopped together (loop.py fills them).

A launcher that runs its job in place (the basic launcher, joblib with one job) runs it here, in the sweeper's
main thread, where signals reach its trainer; any other runs each job in a thread of its own, and a SLURM job is
watched by slurm.py. `stop` forwards a stop to where the jobs run (stopping.py).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from fashionlab.config import UserError
from fashionlab.search import stopping
from fashionlab.search.launchers import in_process, is_slurm, parallel_jobs
from fashionlab.search.slurm import SlurmJob


class Slots:
    """Jobs in flight, each a launch of its own: in this thread for a launcher that runs its job in place (the
    basic launcher: signals reach it here), else in a thread of its own; a SLURM job is watched (slurm.py)."""

    def __init__(self, launcher: Any, launcher_cfg: DictConfig, n_jobs: int | None):
        self.launcher, self.slurm = launcher, is_slurm(launcher_cfg)
        self.here = in_process(launcher_cfg)
        self.size = 1 if self.here else int(n_jobs or parallel_jobs(launcher_cfg))
        self.pool = None if self.here else ThreadPoolExecutor(self.size)
        self.running: dict[Future, tuple[Any, SlurmJob | None]] = {}
        self.sent: dict[int, int] = {}  # the processes stopping.stop_local signalled
        self.ended = threading.Event()  # the SLURM watchers' wait, cut short when the loop ends

    @property
    def free(self) -> int:
        return self.size - len(self.running)

    def launch(self, overrides: tuple[str, ...], job_idx: int, key: Any) -> None:
        if self.here:
            future: Future = Future()
            try:
                (ret,) = self.launcher.launch([overrides], initial_job_idx=job_idx)
                future.set_result(ret)
            except BaseException as e:  # noqa: BLE001 - told as the trial's outcome
                future.set_exception(e)
            self.running[future] = (key, None)
        elif self.slurm:
            job = SlurmJob(self.launcher, list(overrides), job_idx)
            assert self.pool is not None
            self.running[self.pool.submit(job.wait, self.ended)] = (key, job)
        else:
            assert self.pool is not None
            self.running[self.pool.submit(lambda: self.launcher.launch([overrides], initial_job_idx=job_idx)[0])] = (
                key,
                None,
            )

    def finished(self, timeout: float | None = 0.5, everything: bool = False) -> list[tuple[Any, Callable[[], Any]]]:
        """The jobs that ended within `timeout` s (all of them, if `everything`), each with a call that returns
        its job's return value or raises what it raised."""
        if not self.running:
            return []
        done, _ = wait(self.running, timeout=timeout, return_when="ALL_COMPLETED" if everything else FIRST_COMPLETED)
        ended: list[tuple[Any, Callable[[], Any]]] = []
        for future in done:
            key, _ = self.running.pop(future)
            ended.append((key, functools.partial(_return_value, future)))
        return ended

    def stop(self, now: bool) -> None:
        """Ask the running jobs to stop after their batch (`now`: at once)."""
        if self.slurm:
            for _, job in self.running.values():
                assert job is not None
                job.stop(now)
        elif not self.here:
            stopping.stop_local(self.sent, now)

    def close(self) -> None:
        self.ended.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _return_value(future: Future) -> Any:
    return future.result().return_value  # Hydra's JobReturn: raises what the job raised


def suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    """Draw parameter `name` from distribution `d` through Optuna's public suggest API."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    raise UserError(f"hydra.sweeper.params.{name}: {d} is not a distribution the sweeper can draw from.")
