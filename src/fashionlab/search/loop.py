"""One search, top to bottom: check the settings, open the study, warm start, run the trials, confirm the best,
write the results. The only module that knows Hydra's launcher.

Trials run in flight: as many as the launcher runs at once (joblib's n_jobs, SLURM's array_parallelism, 1 for the
basic launcher), each a launch of its own, and a slot that frees is refilled at once, the study asked then, so
that the sampler and the pruner see every result there is. Each trial's outcome is told to the study (tell.py);
what stops the search is n_trials, a budget (budgets.py), or a signal to the sweeper itself (stopping.py).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashionlab import record, signals
from fashionlab.config import UserError
from fashionlab.files import DiskFull, redact
from fashionlab.search import (
    TRIAL_ENV,
    confirmation,
    hydra_internals,
    optuna_internals,
    results,
    tell,
    warm_start,
)
from fashionlab.search.budgets import over_failure_budget, why_spent
from fashionlab.search.checks import check_multi_objective, check_sweeper, directions
from fashionlab.search.launchers import in_process
from fashionlab.search.slots import Slots, suggest
from fashionlab.search.storage import Heartbeat, StorageLost, fail_stale_trials, quiet_optuna, retrying
from fashionlab.search.study import SEARCH_WHITELIST, continued, count_trials, open_study
from fashionlab.status import EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, EXIT_USER_ERROR, fail

log = logging.getLogger(__name__)


class Search:
    """A search as Hydra's sweeper runs it: `config` is the whole config, its `hydra.sweeper` the settings."""

    def __init__(self, config: DictConfig, hydra_context: Any, task_function: Any):
        self.cfg, self.s = config, config.hydra.sweeper
        self.launcher = hydra_internals.launcher(hydra_context, task_function, config)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.metric = str(OmegaConf.select(config, "objective.metric", default="value"))
        self.n_trials, self.job_idx = int(self.s.n_trials), 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.spent: str | None = None  # why no more trials start: a budget, or the failure budget (failed)
        self.failed: str | None = None
        self.confirmed: dict[str, Any] = {}

    # The story.
    def sweep(self, arguments: list[str]) -> None:
        problems = optuna_internals.check() + hydra_internals.check()
        if problems:
            fail(optuna_internals.upgrade_message(problems), EXIT_USER_ERROR)
        self.space, self.fixed, self.fixed_overrides = hydra_internals.search_space(self.s.params, list(arguments))
        self.grid = None
        if self.s.sampler._target_ == "optuna.samplers.GridSampler":
            self.grid = {name: hydra_internals.grid_choices(d) for name, d in self.space.items()}
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in self.grid.values()))
        self.extend = None
        if self.s.custom_search_space:  # hydra-optuna-sweeper's hook: a function(cfg, trial) that suggests more
            self.extend = instantiate({"_target_": self.s.custom_search_space, "_partial_": True})
        with signals.recorded("sweeper"):
            try:
                study = self.open()
                results.save_command(self.cfg)
                warm_start.enqueue(study, list(self.s.enqueue or []), self.space, self.s.storage_timeout)
                if self.s.warm_start_from:
                    folders = [Path(str(f)) for f in self.s.warm_start_from]
                    warm_start.import_runs(study, folders, self.space, self.metric, self.s.storage_timeout)
                if not self.s.confirm.only:
                    self.run_trials(study)
                if not self.stopping and self.s.confirm.top_k > 0:
                    self.confirm(study)
                results.write(study, self.sweep_dir, [o["metric"] for o in record.objectives(self.cfg)], self.confirmed)
            except (StorageLost, DiskFull) as e:  # the database stayed away, or the disk is full
                fail(str(e), EXIT_NOT_COMPLETED)
            except UserError as e:
                fail(str(e), EXIT_USER_ERROR)
            if self.failed:
                fail(self.failed, EXIT_NOT_COMPLETED)
            if self.stopping:
                log.warning(
                    f"the search stopped (signal {signals.pending()}): its running trials wrote their checkpoints "
                    f"and are recorded as interrupted; run the same command again to go on"
                )
                sys.exit(EXIT_INTERRUPTED)

    @property
    def stopping(self) -> bool:
        """The sweeper got a signal (or, with the basic launcher, the trial it runs did)."""
        return signals.pending() is not None

    def open(self) -> optuna.Study:
        check_sweeper(self.s)
        given = list(self.s.direction) if OmegaConf.is_list(self.s.direction) else [str(self.s.direction)]
        wanted = directions(self.cfg, given)
        if len(wanted) > 1:
            check_multi_objective(self.s.pruner._target_, self.s.target, self.s.patience)
        if self.s.storage is None and not in_process(self.cfg.hydra.launcher):
            raise UserError(
                "hydra.sweeper.storage=null keeps the study in this process's memory, where the launcher's job "
                "processes cannot report to it. Use a journal file (the default) or a database URL."
            )
        with quiet_optuna():
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1) if self.s.retry_dead_trials else None
        study = open_study(
            self.s, self.sampler(0), wanted if len(wanted) > 1 else wanted[0], stale_trial_callback=retry
        )
        self.store = optuna_internals.storage(study) if self.s.storage is not None else None
        where = "memory" if self.s.storage is None else redact(str(self.s.storage))
        log.info(
            f"Study {study.study_name} in {where}: {len(study.trials)} trials so far. Sampler "
            f"{self.s.sampler._target_.rsplit('.', 1)[-1]} (seed {self.s.sampler.get('seed')} + trial number), "
            f"pruner {type(study.pruner).__name__}, {self.n_trials} trials in all (worker {self.worker})"
        )
        return study

    def run_trials(self, study: optuna.Study) -> None:
        """Keep the slots busy until n_trials, a budget or a signal; tell the study how each trial ended."""
        slots = Slots(self.launcher, self.cfg.hydra.launcher, self.s.n_jobs)
        start, (_, done_before, _) = time.monotonic(), self.counts(study)
        with Heartbeat(self.store, [], always=True) as beat:
            try:
                while True:
                    if not self.stopping:
                        for trial, overrides in self.ask_for(study, slots.free, start):
                            beat.trial_ids.append(optuna_internals.trial_id(trial))
                            slots.launch(overrides, self.job_idx, trial)
                            self.job_idx += 1
                    else:
                        slots.stop(now=signals.received() > 1)
                    if not slots.running:
                        break
                    for trial, result in slots.finished():
                        state, value = tell.tell(study, trial, result, self.stopping, self.s.storage_timeout)
                        self.progress(study, trial, value, start, done_before)
            except BaseException:  # a full disk, a lost database: stop the other trials, record what can be
                self.drain(study, slots)
                raise
            finally:
                slots.close()
                self.fail_unlaunched(study)
        if not self.stopping and self.spent is None:
            claimed, done, _ = self.counts(study)
            log.info(
                f"the study has {done} finished and {claimed - done} running of its {self.n_trials} trials: "
                f"nothing more to start (raise hydra.sweeper.n_trials for more)"
            )

    def ask_for(self, study: optuna.Study, free: int, start: float) -> list[tuple[optuna.Trial, tuple[str, ...]]]:
        """Up to `free` new trials, unless the study has n_trials or a budget says stop."""
        if free <= 0 or self.spent is not None:
            return []
        for t in retrying(lambda: fail_stale_trials(study), "check heartbeats", self.s.storage_timeout):
            log.warning(
                f"trial {t.number} sent no heartbeat for {self.s.grace_period} s (its worker died): marked failed"
                + (", and queued again with the same parameters" if self.s.retry_dead_trials else "")
            )
        trials = self.trials(study)
        claimed, _, failed = count_trials(trials)
        self.failed = over_failure_budget(failed, self.n_trials, self.s.max_failure_rate, str(self.sweep_dir))
        maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        elapsed = time.monotonic() - start
        self.spent = self.failed or why_spent(
            trials, maximize, elapsed, self.metric, self.s.timeout, self.s.target, self.s.patience
        )
        if self.spent is not None:
            if not self.failed:
                log.info(f"the search stops: {self.spent}; no more trials start (running ones finish)")
            return []
        asked = []
        for _ in range(min(free, self.n_trials - claimed)):
            trial, overrides = self.ask(study)
            if tell.surplus(self.trials(study), trial.number, self.n_trials):
                tell.fail(study, trial, tell.NOT_NEEDED, self.s.storage_timeout)
                log.info(f"trial {trial.number} not started: other workers took the study's last trials")
                continue
            asked.append((trial, overrides))
        return asked

    def ask(self, study: optuna.Study) -> tuple[optuna.Trial, tuple[str, ...]]:
        """A trial of the study, its parameters drawn, and the overrides of its job."""
        with quiet_optuna():
            trial = retrying(study.ask, "ask for a trial", self.s.storage_timeout)
        if self.grid is None:  # before the parameters are drawn
            study.sampler = self.sampler(trial.number)
        # GridSampler keeps one instance: it shuffles its grid by its seed, so a point picked at ask() by one
        # seed would be another point at suggest() under the next; it picks among unvisited points at random.
        for name, distribution in self.space.items():
            suggest(trial, name, distribution)
        for key, value in self.fixed.items():  # as hydra-optuna-sweeper records them; no password in a record
            trial.set_user_attr(key, redact(value) if isinstance(value, str) else value)
        if self.extend is not None:
            self.extend(self.cfg, trial)
        overlap = trial.params.keys() & self.fixed.keys()
        if overlap:
            raise UserError(
                f"{', '.join(sorted(overlap))} are both searched and fixed: give each one value or a space."
            )
        params = {**trial.params, **self.fixed}
        overrides = (*(f"{k}={v}" for k, v in params.items()), *self.fixed_overrides)
        name, resume = results.dirname(trial.number, trial.params, self.sweep_dir), tuple[str, ...]()
        earlier = continued(optuna_internals.frozen(study, trial))
        if earlier is not None:  # a dead, interrupted or lost trial's retry: in its folder, from its last checkpoint
            folder = Path(optuna_internals.trial_by_number(study, earlier).user_attrs.get("run_dir", ""))
            if (folder / "checkpoints" / "last.pt").is_file():
                name, resume = folder.name, (f"resume='{folder}'",)
                log.info(f"trial {trial.number} continues trial {earlier} from its last checkpoint ({folder})")
        trial.set_user_attr("run_dir", str(self.sweep_dir / name))
        trial.set_user_attr("worker", self.worker)
        job = (f"hydra.sweep.subdir='{name}'", f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}", *resume)
        return trial, (*overrides, *job)

    def sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for one trial, seeded by its number: reproducible, and distinct across workers."""
        seed = self.s.sampler.get("seed")
        kwargs: dict[str, Any] = {} if seed is None else {"seed": int(seed) + number}
        made = instantiate(self.s.sampler, **kwargs, _execution_whitelist_=SEARCH_WHITELIST)
        return made(self.grid) if isinstance(made, functools.partial) else made

    def confirm(self, study: optuna.Study) -> None:
        """The top trials trained again with new seeds (confirmation.py), through the same slots."""
        c = self.s.confirm
        if len(study.directions) > 1:
            log.warning("confirmation ranks trials by one objective: not done for a multi-objective search")
            return
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        top = confirmation.top_trials(self.trials(study), c.top_k, maximize)
        if not top:
            log.warning("no completed trial to confirm")
            return
        base = int(OmegaConf.select(self.cfg, "seed", default=0))
        seeds = [base + i for i in range(1, c.seeds + 1)]
        todo, done = confirmation.jobs(top, seeds, self.sweep_dir, self.fixed, self.fixed_overrides, c.split_seed)
        log.info(
            f"confirming trials {', '.join(str(t.number) for t in top)} with seeds {seeds}"
            f"{' and as many validation splits' if c.split_seed else ''}: {len(todo)} runs to train"
            + (f" ({done} done already)" if done else "")
        )
        slots = Slots(self.launcher, self.cfg.hydra.launcher, self.s.n_jobs)
        try:
            while todo or slots.running:
                if self.stopping:
                    todo = []
                    slots.stop(now=signals.received() > 1)
                while todo and slots.free > 0:
                    slots.launch(todo.pop(0), self.job_idx, None)
                    self.job_idx += 1
                for _, result in slots.finished():
                    try:  # a run that failed is a failed run: the leaderboard shows it
                        result()
                    except Exception as e:  # noqa: BLE001 - one run's failure does not stop the others
                        log.warning(f"a confirmation run failed: {redact(str(e)).splitlines()[0] if str(e) else e!r}")
        finally:
            slots.close()
        numbers = [t.number for t in top]
        self.confirmed = confirmation.record(study, self.sweep_dir, numbers, self.metric, self.s.storage_timeout)

    def trials(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        return retrying(lambda: study.get_trials(deepcopy=False), "read the trials", self.s.storage_timeout)

    def counts(self, study: optuna.Study) -> tuple[int, int, int]:
        return count_trials(self.trials(study))

    def progress(self, study: optuna.Study, trial: Any, value: float | None, start: float, before: int) -> None:
        """The line after every trial: its outcome, the best so far, trials done, time spent and left."""
        _, done, _ = self.counts(study)
        frozen = retrying(lambda: optuna_internals.frozen(study, trial), "read a trial", self.s.storage_timeout)
        best = retrying(lambda: results.best_so_far(study), "read the best", self.s.storage_timeout)
        elapsed = time.monotonic() - start
        log.info(results.progress_line(frozen, value, self.metric, best, done, before, self.n_trials, elapsed))

    def fail_unlaunched(self, study: optuna.Study) -> None:
        """This worker's trials still RUNNING after its loop were asked for but never launched: interrupted."""
        for t in tell.unlaunched(self.trials(study), self.worker):
            tell.fail(study, optuna_internals.open_trial(study, t), "interrupted", self.s.storage_timeout)

    def drain(self, study: optuna.Study, slots: Slots) -> None:
        """The loop ends early (a full disk, a lost database): stop the running trials, wait for them, and record
        them as interrupted where the study can still be written."""
        slots.stop(now=False)
        for trial, result in slots.finished(timeout=None, everything=True):
            try:
                tell.tell(study, trial, result, True, self.s.storage_timeout)
            except Exception as e:  # noqa: BLE001 - the study or the disk is gone: the trial stays as it is
                log.warning(f"trial {trial.number} could not be recorded ({type(e).__name__})")
