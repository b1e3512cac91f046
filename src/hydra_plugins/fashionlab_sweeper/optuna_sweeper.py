"""The project's Optuna sweeper: asks the study for trials, launches them, tells their results.

hydra-optuna-sweeper 1.4's sweeper (its search-space parsing, trial configuration and config are reused),
extended where it stops short (hydra issues #1710, #1954):
- Pruning: each job knows its trial (fashionlab/search.py) and reports after every epoch; a pruned job
  returns `search.Pruned`, told as PRUNED: not FAIL, and not counted against max_failure_rate.
- One study, many workers: n_trials is the study's total, trial numbers come from the study, the sampler is
  seeded per trial (seed + trial number, so workers started together draw different trials), and each trial
  is a run folder named by its number under the one study folder (hydra.sweep.dir).
- Dead workers: trials send heartbeats; the next worker fails stale ones (and queues each again once).
- A database restart is ridden out (study.retrying); Ctrl-C records the trial as failed and exits 130.
- No `Study.stop` outside `optimize` (the released sweeper's crash when a grid's last trial fails).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.trial import TrialState

from fashionlab import search
from fashionlab import study as studies
from fashionlab.config import UserError
from fashionlab.record import redact
from fashionlab.status import EXIT_NOT_COMPLETED, EXIT_USER_ERROR, Status, fail
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

log = logging.getLogger(__name__)

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


class OptunaPruningSweeper(OptunaSweeperImpl):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        storage: Any,
        study_name: str,
        n_trials: int,
        n_jobs: int | None,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: Any,
        heartbeat_interval: int,
        grace_period: int,
        retry_dead_trials: bool,
        storage_timeout: float,
    ):
        super().__init__(
            None, direction, storage, study_name, n_trials, n_jobs or 0, max_failure_rate, custom_search_space, params
        )
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.retry_dead_trials, self.storage_timeout = retry_dead_trials, storage_timeout

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        space, fixed, fixed_overrides = create_params_from_overrides(
            self._parse_sweeper_params_config() + list(arguments)
        )
        for name in fixed:
            space.pop(name, None)
        self.grid = None
        if self.sampler_cfg._target_ == "optuna.samplers.GridSampler":
            self.grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in self.grid.values()))
        try:
            study = self._open_study()
            self._run(study, space, fixed, fixed_overrides)
        except studies.StorageLost as e:  # the database went away for longer than storage_timeout
            fail(str(e), EXIT_NOT_COMPLETED)
        except UserError as e:
            fail(str(e), EXIT_USER_ERROR)
        self._write_results(study)

    def _retry(self, call, what: str):
        return studies.retrying(call, what, self.storage_timeout)

    def _open_study(self) -> optuna.Study:
        directions = self._get_directions()
        mode = OmegaConf.select(self.config, "objective.mode", default=None)
        if len(directions) != 1 or (mode and {"max": "maximize", "min": "minimize"}[mode] != directions[0]):
            raise UserError(
                f"hydra.sweeper.direction={directions} does not match objective.mode={mode}: the "
                f"sweeper optimises the one value a job returns. Set both the same way."
            )
        if self.storage is None and self.config.hydra.launcher._target_ != BASIC_LAUNCHER:
            raise UserError(
                "hydra.sweeper.storage=null keeps the study in this process's memory, where the "
                "launcher's job processes cannot report to it. Use a journal file (the default) or a "
                "database URL."
            )
        with studies.quiet_optuna():
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1) if self.retry_dead_trials else None
        self.store = studies.open_storage(self.storage, self.heartbeat_interval, self.grace_period, callback)
        pruner = instantiate(self.pruner_cfg, _execution_whitelist_=search.SEARCH_WHITELIST)
        study = self._retry(
            lambda: optuna.create_study(
                study_name=self.study_name,
                storage=self.store,
                sampler=self._sampler(0),
                pruner=pruner,
                direction=directions[0],
                load_if_exists=True,
            ),
            "open the study",
        )
        if self.store is None:
            studies.remember_in_memory(study)
        where = "memory" if self.store is None else redact(self.storage)
        log.info(
            f"Study {study.study_name} in {where}: {len(study.trials)} trials so far. Sampler "
            f"{self.sampler_cfg._target_.rsplit('.', 1)[-1]} (seed {self.sampler_cfg.get('seed')} + trial "
            f"number), pruner {type(pruner).__name__}, {self.n_trials} trials in all "
            f"(worker {socket.gethostname()}:{os.getpid()})"
        )
        return study

    def _sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for one trial, seeded by its number: reproducible, and distinct across workers."""
        seed = self.sampler_cfg.get("seed")
        kwargs = {} if seed is None else {"seed": int(seed) + number}
        sampler = instantiate(self.sampler_cfg, **kwargs, _execution_whitelist_=search.SEARCH_WHITELIST)
        return sampler(self.grid) if isinstance(sampler, functools.partial) else sampler

    def _counts(self, study: optuna.Study, below: int | None = None) -> tuple[int, int, int]:
        return studies.count_trials(self._retry(lambda: study.get_trials(deepcopy=False), "read the trials"), below)

    def _run(self, study: optuna.Study, space: dict, fixed: dict, fixed_overrides: list[str]) -> None:
        n_jobs = self.n_jobs or search.parallel_jobs(self.config.hydra.launcher)
        start, (_, done_at_start, _) = time.monotonic(), self._counts(study)
        while True:
            self._fail_stale(study)
            claimed, done, failed = self._counts(study)
            if failed > self.max_failure_rate * self.n_trials:
                fail(
                    f"The search stopped: {failed} of its {self.n_trials} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}. Each failed trial's train.log and "
                    f"metrics.json (under {self.config.hydra.sweep.dir}) say why.",
                    EXIT_NOT_COMPLETED,
                )
            if claimed >= self.n_trials:
                log.info(
                    f"the study has {done} finished and {claimed - done} running of its {self.n_trials} "
                    f"trials: nothing more to start (raise hydra.sweeper.n_trials for more)"
                )
                return
            batch = [
                self._ask(study, space, fixed, fixed_overrides) for _ in range(min(n_jobs, self.n_trials - claimed))
            ]
            batch = [b for b in batch if not self._surplus(study, b[0])]
            if not batch:
                continue
            with studies.Heartbeat(self.store, [t._trial_id for t, _, _ in batch]):
                try:
                    returns = self.launcher.launch([o for _, o, _ in batch], initial_job_idx=self.job_idx)
                except BaseException:  # Ctrl-C (exit 130): each job wrote its checkpoint; the trials did not end
                    for trial, _, _ in batch:
                        self._tell_failed(study, trial, str(Status.INTERRUPTED))
                    raise
            self.job_idx += len(returns)
            for (trial, _, run_dir), ret in zip(batch, returns):
                state, value = self._tell(study, trial, ret, run_dir)
                self._log_progress(study, trial, state, value, start, done_at_start)

    def _ask(self, study: optuna.Study, space: dict, fixed: dict, fixed_overrides: list[str]):
        with studies.quiet_optuna():
            trial = self._retry(study.ask, "ask for a trial")
        study.sampler = self._sampler(trial.number)  # before the parameters are drawn (_configure_trials)
        (overrides,) = self._configure_trials([trial], space, fixed, fixed_overrides)
        for key, value in fixed.items():  # _configure_trials copies fixed overrides into the trial's attributes
            if isinstance(value, str) and redact(value) != value:
                trial.set_user_attr(key, redact(value))
        name = self._dirname(trial)
        run_dir = Path(self.config.hydra.sweep.dir) / name
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return (
            trial,
            (*overrides, f"hydra.sweep.subdir='{name}'", f"++hydra.job.env_set.{search.TRIAL_ENV}={trial.number}"),
            run_dir,
        )

    def _surplus(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Two workers that both saw one trial left both asked for it: the higher trial number yields."""
        if self._counts(study, below=trial.number)[0] < self.n_trials:
            return False
        self._tell_failed(study, trial, "not needed: the study reached n_trials")
        log.info(f"trial {trial.number} not started: other workers took the study's last trials")
        return True

    def _dirname(self, trial: optuna.Trial) -> str:
        """`007_optimizer=adamw,lr=0.0062,batch_size=64`: the trial number, then its rounded parameters."""
        values = ",".join(
            f"{k.rsplit('.', 1)[-1]}={f'{v:.2g}' if isinstance(v, float) else v}" for k, v in trial.params.items()
        )
        taken = {p.name.split("_", 1)[0] for p in Path(self.config.hydra.sweep.dir).glob(f"{trial.number:03d}*")}
        prefix, n = f"{trial.number:03d}", 2
        while prefix in taken:  # a folder left by an earlier study of the same name
            prefix, n = f"{trial.number:03d}-{n}", n + 1
        return f"{prefix}_{values}"

    def _tell(self, study: optuna.Study, trial: optuna.Trial, ret, run_dir: Path) -> tuple[TrialState, float | None]:
        try:
            value = ret.return_value  # raises what the job raised
        except studies.StorageLost:
            raise
        except Exception as e:  # noqa: BLE001 - a job that raised is a failed trial, whatever it raised
            log.warning(f"trial {trial.number} failed: {redact(str(e).splitlines()[0] if str(e) else repr(e))}")
            self._tell_failed(study, trial, str(Status.FAILED))
            return TrialState.FAIL, None
        if isinstance(value, search.Pruned):
            state, values = TrialState.PRUNED, None  # Optuna keeps the last reported value
        elif value is None or math.isnan(value):  # diverged or failed, as the job's metrics.json says
            self._tell_failed(study, trial, self._job_status(run_dir))
            return TrialState.FAIL, None
        else:
            state, values = TrialState.COMPLETE, float(value)
        frozen = self._retry(lambda: self._finish(study, trial, state, values), f"record trial {trial.number}")
        if frozen.state != state:
            log.warning(
                f"trial {trial.number} had already ended as {frozen.state.name} (marked by another worker "
                f"while the database was unreachable?)"
            )
        return frozen.state, frozen.value

    @staticmethod
    def _job_status(run_dir: Path) -> str:
        try:
            return json.loads((run_dir / "metrics.json").read_text())["status"]
        except (OSError, ValueError, KeyError):  # it wrote none
            return str(Status.FAILED)

    def _tell_failed(self, study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
        try:
            self._retry(
                lambda: study._storage.set_trial_system_attr(trial._trial_id, studies.FAILURE_ATTR, reason),
                f"record trial {trial.number}",
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # it ended already (failed as stale by another worker)
        self._retry(lambda: self._finish(study, trial, TrialState.FAIL), f"record trial {trial.number}")

    @staticmethod
    def _finish(study: optuna.Study, trial: optuna.Trial, state: TrialState, values=None) -> optuna.trial.FrozenTrial:
        """study.tell, without GridSampler's `study.stop()` on the grid's last point: outside `optimize` that
        raises (after the trial is stored), which crashed the released sweeper; this one stops by n_trials."""
        try:
            study.tell(trial, values, state=state, skip_if_finished=True)
        except RuntimeError as e:
            if "Study.stop" not in str(e):
                raise
        return study._storage.get_trial(trial._trial_id)

    def _fail_stale(self, study: optuna.Study) -> None:
        for t in self._retry(lambda: studies.fail_stale_trials(study), "check heartbeats"):
            log.warning(
                f"trial {t.number} sent no heartbeat for {self.grace_period} s (its worker died): marked "
                f"failed" + (", and queued again with the same parameters" if self.retry_dead_trials else "")
            )

    def _log_progress(self, study, trial, state: TrialState, value, start: float, done_at_start: int) -> None:
        """One line per finished trial: its outcome, the best so far, trials done, time spent and left."""
        _, done, _ = self._counts(study)
        elapsed = time.monotonic() - start
        rate = (done - done_at_start) / elapsed
        left = (
            "done"
            if done >= self.n_trials
            else f"about {_duration((self.n_trials - done) / rate)} left"
            if rate
            else "time left unknown"
        )
        metric = OmegaConf.select(self.config, "objective.metric", default="value")
        if state == TrialState.FAIL:
            outcome = "failed"
        elif state == TrialState.PRUNED:
            epoch = max(study._storage.get_trial(trial._trial_id).intermediate_values, default=0)
            outcome = f"pruned after epoch {epoch}: {metric} {value:.4f}"
        else:
            outcome = f"completed: {metric} {value:.4f}"
        best = studies.best_trial(study)
        best = f"best {best.value:.4f} (trial {best.number})" if best else "no completed trial yet"
        log.info(
            f"trial {trial.number} {outcome} | {best} | {done} of {self.n_trials} trials | "
            f"{_duration(elapsed)} elapsed, {left}"
        )

    def _write_results(self, study: optuna.Study) -> None:
        best = studies.best_trial(study)
        if best is None:
            log.warning("no trial of the study has completed: no best parameters to report")
            return
        results = {
            "name": "optuna",
            "study": study.study_name,
            "best_trial": best.number,
            "best_params": best.params,
            "best_value": best.value,
        }
        OmegaConf.save(OmegaConf.create(results), Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")
        log.info(f"Best: trial {best.number}, value {best.value:.4f}, parameters {best.params}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
        if seconds >= 60
        else f"{seconds}s"
    )
