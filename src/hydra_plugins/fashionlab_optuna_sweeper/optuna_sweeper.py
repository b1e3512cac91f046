"""The project's Optuna sweeper: asks the study for trials, launches them, tells their results.

hydra-optuna-sweeper 1.4's sweeper (its search-space parsing, trial configuration and config are reused),
extended where it stops short (hydra issues #1710, #1954):
- One contract with the jobs: each returns an `Outcome` (fashionlab/status.py), and the study is told from it
  alone: COMPLETE with its value, PRUNED (not counted against max_failure_rate), or FAIL with the reason.
  The storage and the pruner are built by the same function on both sides (search.open_study).
- Pruning: each job knows its trial (fashionlab/search.py) and reports after every epoch.
- One study, many workers: n_trials is the study's total, trial numbers come from the study, the sampler is
  seeded per trial (seed + trial number, so workers started together draw different trials), and each trial
  is a run folder named by its number under the one study folder (hydra.sweep.dir).
- Dead workers: trials send heartbeats; the next worker fails stale ones (and queues each again once).
- Faults: a database restart is ridden out (study.retrying); SIGINT or SIGTERM reach the trials running in
  other processes too, which write their checkpoints; the trials are recorded as interrupted and the search
  exits 130; a full disk fails the trial and stops the worker (exit 3).
- No `Study.stop` outside `optimize` (the released sweeper's crash when a grid's last trial fails).
- Confirmation (hydra.sweeper.confirm): the best trials trained again with new seeds, through the same launcher;
  their mean and spread are study attributes, and optimization_results.yaml gives the confirmed choice.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from fashionlab import leaderboard, record, search
from fashionlab import study as studies
from fashionlab.config import UserError, check_sweeper
from fashionlab.record import CONFIRMS_ENV, DiskFull, read_status, redact
from fashionlab.status import EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, EXIT_USER_ERROR, Outcome, Status, fail
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

log = logging.getLogger(__name__)

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def trial_processes() -> list[int]:
    """The processes under this one that may run a trial: joblib's workers, submitit's local jobs (and what
    they started). Read from /proc (Linux).

    Not submitit's local controller (`python -m submitit.local._local`), which sits between this process and
    its job: on SIGINT it prints a traceback, passes SIGINT on and kills the job a second later, before the job
    has written its checkpoint. Its job gets the signal directly instead, and the controller sees it end.
    """
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            parents.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = [], list(parents.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        with suppress(OSError):
            if b"submitit.local._local" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


class FashionlabOptunaSweeper(OptunaSweeperImpl):
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
        confirm: Any,
        timeout: float | None,
        target: float | None,
        patience: int | None,
        enqueue: Any,
        warm_start_from: Any,
    ):
        numbers = dict(
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            grace_period=grace_period,
            heartbeat_interval=heartbeat_interval,
            storage_timeout=storage_timeout,
            confirm=confirm,
            timeout=timeout,
            target=target,
            patience=patience,
        )
        problems = check_sweeper(OmegaConf.create(numbers))  # before the released sweeper asserts on some of them
        if problems:
            fail(problems)
        super().__init__(
            None, direction, storage, study_name, n_trials, n_jobs or 0, max_failure_rate, custom_search_space, params
        )
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.retry_dead_trials, self.storage_timeout = retry_dead_trials, storage_timeout
        self.confirm, self.confirmed = confirm, dict[str, Any]()
        self.timeout, self.target, self.patience, self.enqueue = timeout, target, patience, list(enqueue or [])
        self.warm_start_from = [Path(str(f)) for f in warm_start_from or []]
        self.spent: str | None = None  # which budget ended the search (timeout, target, patience)
        self.stopped: str | None = None  # why the search stops after its running trials (a signal)
        self._launching = False

    @property
    def cfg(self) -> DictConfig:
        assert self.config is not None, "Hydra sets the config before sweep()"
        return self.config

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
            self._save_command()
            self._warm_start(study, space)
            with self._stop_on_signals():
                if not self.confirm.only:
                    self._run(study, space, fixed, fixed_overrides)
                if self.stopped is None and self.confirm.top_k > 0:
                    self._confirm(study, fixed, fixed_overrides)
        except (studies.StorageLost, DiskFull) as e:  # the database stayed away, or the disk is full
            fail(str(e), EXIT_NOT_COMPLETED)
        except UserError as e:
            fail(str(e), EXIT_USER_ERROR)
        self._write_results(study)
        if self.stopped is not None:
            log.warning(
                f"the search stopped ({self.stopped}): its running trials wrote their checkpoints and are recorded "
                f"as interrupted; run the same command again to go on"
            )
            sys.exit(EXIT_INTERRUPTED)

    def _warm_start(self, study: optuna.Study, space: dict) -> None:
        """hydra.sweeper.enqueue (tried first, once per study) and warm_start_from (finished runs as trials)."""
        for i, params in enumerate(self.enqueue):
            params = dict(params)
            self._check_fits(params, space, f"hydra.sweeper.enqueue[{i}]")
            before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            self._retry(functools.partial(study.enqueue_trial, params, skip_if_exists=True), "queue a trial")
            if len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > before:
                log.info(f"queued {params} (hydra.sweeper.enqueue): tried before the sampler's trials")
        if not self.warm_start_from:
            return
        metric = OmegaConf.select(self.cfg, "objective.metric")
        known = {t.system_attrs.get(studies.IMPORTED_ATTR) for t in study.get_trials(deepcopy=False)}
        added, skipped = 0, []
        for folder in self.warm_start_from:
            if not folder.is_dir():
                raise UserError(
                    f"hydra.sweeper.warm_start_from: {folder} is not a folder. Give folders of finished runs, e.g. "
                    f"multirun/2026-11-29/12-00-00 or another study's multirun/<study_name>."
                )
            for run in leaderboard.load_runs(folder):
                where = str(run["dir"].resolve())
                if run["status"] != Status.COMPLETED or where in known or run.get("confirms") is not None:
                    continue
                saved = run["dir"] / ".hydra" / "config.yaml"
                config = OmegaConf.load(saved) if saved.is_file() else OmegaConf.create()
                params = {k: run["hparams"].get(k, OmegaConf.select(config, k, default=None)) for k in space}
                fits = run["objective"]["metric"] == metric and all(
                    v is not None and space[k]._contains(space[k].to_internal_repr(v)) for k, v in params.items()
                )
                if not fits:
                    skipped.append(run["name"])
                    continue
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions=space,
                    value=run["objective"]["value"],
                    system_attrs={studies.IMPORTED_ATTR: where},
                    user_attrs={"imported_from": where, "run_dir": where},
                )
                self._retry(functools.partial(study.add_trial, trial), "add a trial")
                added += 1
        log.info(
            f"warm start: {added} finished runs added to the study as trials (hydra.sweeper.warm_start_from)"
            + (
                f"; {len(skipped)} left out (another objective, or parameters outside the search space)"
                if skipped
                else ""
            )
        )

    @staticmethod
    def _check_fits(params: dict, space: dict, where: str) -> None:
        for key, value in params.items():
            if key not in space:
                raise UserError(
                    f"{where} sets {key}, which the search does not search: its parameters are "
                    f"{', '.join(space)} (hydra.sweeper.params). Use those keys."
                )
            dist = space[key]
            try:
                fits = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                fits = False
            if not fits:
                raise UserError(
                    f"{where}: {key}={value!r} is outside its search space ({dist}). Choose a value inside it, or "
                    f"widen hydra.sweeper.params.{key}."
                )

    def _save_command(self) -> None:
        """multirun.yaml in the study's folder, as Hydra's basic sweeper writes it: the search's config and its
        command-line overrides (src/confirm.py runs them again). Passwords masked."""
        folder = Path(self.cfg.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        text = redact(OmegaConf.to_yaml(self.cfg))
        with suppress(OSError):  # a record for later: a full disk shows itself with the first trial
            (folder / "multirun.yaml").write_text(text)

    def _retry(self, call: Any, what: str) -> Any:
        return studies.retrying(call, what, self.storage_timeout)

    def _direction(self) -> str | list[str]:
        """objective.mode says which way the objective is better; hydra.sweeper.direction defaults to it. A
        multi-objective search (objective.metrics) has one direction per objective, from their modes."""
        directions = [search.DIRECTIONS.get(str(d)) for d in self._get_directions()]
        mode = OmegaConf.select(self.cfg, "objective.mode", default="max")
        modes = [o["mode"] for o in record.objectives(self.cfg)] or [mode]
        wanted = [search.DIRECTIONS[m] for m in modes]
        if directions != wanted and directions != wanted[:1]:  # the default follows objective.mode
            raise UserError(
                f"hydra.sweeper.direction={self._get_directions()} contradicts the objective's modes {modes}: the "
                f"sweeper optimises what a job returns, which is best when objective.mode (and objective.metrics) "
                f"say. Set objective.mode / objective.metrics only (hydra.sweeper.direction follows them)."
            )
        if len(modes) > 1:
            self._check_multi_objective()
            return modes
        return mode

    def _check_multi_objective(self) -> None:
        pruner = self.pruner_cfg._target_.rsplit(".", 1)[-1]
        refused = [
            name
            for name, given in (
                ("hydra.sweeper.target", self.target),
                ("hydra.sweeper.patience", self.patience),
            )
            if given is not None
        ]
        if pruner == "HyperbandPruner":
            refused.append("hydra/sweeper/pruner=hyperband (it builds studies of its own, single-objective)")
        if refused:
            raise UserError(
                f"A multi-objective search (objective.metrics) has no single best trial, only a Pareto front, so "
                f"{' and '.join(refused)} cannot apply to it. Leave them out (n_trials and hydra.sweeper.timeout "
                f"still end the search; pruning with median or successive_halving judges the first objective)."
            )

    def _open_study(self) -> optuna.Study:
        direction = self._direction()
        if self.storage is None and self.cfg.hydra.launcher._target_ != BASIC_LAUNCHER:
            raise UserError(
                "hydra.sweeper.storage=null keeps the study in this process's memory, where the "
                "launcher's job processes cannot report to it. Use a journal file (the default) or a "
                "database URL."
            )
        with studies.quiet_optuna():
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1) if self.retry_dead_trials else None
        study = search.open_study(self.cfg.hydra.sweeper, self._sampler(0), direction, stale_trial_callback=retry)
        self.store = study._storage if self.storage is not None else None
        where = "memory" if self.storage is None else redact(str(self.storage))
        log.info(
            f"Study {study.study_name} in {where}: {len(study.trials)} trials so far. Sampler "
            f"{self.sampler_cfg._target_.rsplit('.', 1)[-1]} (seed {self.sampler_cfg.get('seed')} + trial "
            f"number), pruner {type(study.pruner).__name__}, {self.n_trials} trials in all "
            f"(worker {socket.gethostname()}:{os.getpid()})"
        )
        return study

    def _sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for one trial, seeded by its number: reproducible, and distinct across workers."""
        seed = self.sampler_cfg.get("seed")
        kwargs: dict[str, Any] = {} if seed is None else {"seed": int(seed) + number}
        sampler = instantiate(self.sampler_cfg, **kwargs, _execution_whitelist_=search.SEARCH_WHITELIST)
        return sampler(self.grid) if isinstance(sampler, functools.partial) else sampler

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT or SIGTERM (Ctrl-C, `kill`, SLURM at preemption): stop the search after its running trials.

        Trials in other processes (joblib's workers, submitit's local jobs) are sent SIGINT, which their
        trainer answers as in a single run: the batch finishes, a checkpoint is written, the job returns
        interrupted. A trial in this process (the basic launcher) has the same handler while it trains, and
        is stopped with KeyboardInterrupt outside its training loop. Trials on other machines (SLURM) get
        SLURM's own signals; their results are recorded when they end. No new trial starts.
        """

        def on_signal(signum: int, frame: Any) -> None:
            if self.stopped is None:
                log.warning(f"signal {signum}: stopping the running trials after their current batch")
            self.stopped = f"signal {signum}"
            children = trial_processes()
            for pid in children:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
            if self._launching and self.cfg.hydra.launcher._target_ == BASIC_LAUNCHER:
                raise KeyboardInterrupt  # the trial runs in this process, outside its training loop

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _counts(self, study: optuna.Study, below: int | None = None) -> tuple[int, int, int]:
        return studies.count_trials(self._retry(lambda: study.get_trials(deepcopy=False), "read the trials"), below)

    def _run(self, study: optuna.Study, space: dict, fixed: dict, fixed_overrides: list[str]) -> None:
        n_jobs = self.n_jobs or search.parallel_jobs(self.cfg.hydra.launcher)
        start, (_, done_at_start, _) = time.monotonic(), self._counts(study)
        if n_jobs > 1 and self.cfg.hydra.launcher._target_ != BASIC_LAUNCHER:
            self._run_in_flight(study, space, fixed, fixed_overrides, n_jobs, start, done_at_start)
            return
        while self.stopped is None:
            self._fail_stale(study)
            claimed, done, failed = self._counts(study)
            self._check_budget(failed)
            if claimed >= self.n_trials:
                self._say_complete(claimed, done)
                return
            if self._budget_spent(study, start):
                return
            batch = [
                self._ask(study, space, fixed, fixed_overrides) for _ in range(min(n_jobs, self.n_trials - claimed))
            ]
            batch = [b for b in batch if not self._surplus(study, b[0])]
            if not batch or self.stopped is not None:
                continue
            assert self.launcher is not None
            with studies.Heartbeat(self.store, [t._trial_id for t, _, _ in batch]):
                self._launching = True
                try:
                    returns = self.launcher.launch([o for _, o, _ in batch], initial_job_idx=self.job_idx)
                except BaseException:  # Ctrl-C outside a trial's training loop: the trials did not end
                    for trial, _, _ in batch:
                        self._tell_failed(study, trial, str(Status.INTERRUPTED))
                    raise
                finally:
                    self._launching = False
            self.job_idx += len(returns)
            for (trial, _, _), ret in zip(batch, returns):
                state, value = self._tell(study, trial, functools.partial(_job_outcome, ret))
                self._log_progress(study, trial, state, value, start, done_at_start)
        self._fail_unlaunched(study)

    def _run_in_flight(
        self,
        study: optuna.Study,
        space: dict,
        fixed: dict,
        fixed_overrides: list[str],
        n_jobs: int,
        start: float,
        done_at_start: int,
    ) -> None:
        """Keep n_jobs trials in flight: each is launched on its own (a launch call of one job, in a thread of
        its own), and a slot that frees is refilled at once, the study asked then, so that the sampler and the
        pruner see every result there is at that moment. Hydra's launchers wait for a whole batch; one job per
        launch keeps a fast trial's slot from waiting for the slowest of its batch."""
        assert self.launcher is not None
        running: dict[Future, optuna.Trial] = {}
        with studies.Heartbeat(self.store, [], always=True) as beat, ThreadPoolExecutor(n_jobs) as slots:
            while True:
                if self.stopped is None:
                    self._fail_stale(study)
                    claimed, done, failed = self._counts(study)
                    self._check_budget(failed)
                    free = 0 if self.spent or self._budget_spent(study, start) else n_jobs - len(running)
                    for _ in range(min(free, self.n_trials - claimed)):
                        trial, overrides, _ = self._ask(study, space, fixed, fixed_overrides)
                        if self._surplus(study, trial) or self.stopped is not None:
                            continue
                        beat.trial_ids.append(trial._trial_id)
                        running[slots.submit(self.launcher.launch, [overrides], initial_job_idx=self.job_idx)] = trial
                        self.job_idx += 1
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    trial = running.pop(future)
                    state, value = self._tell(study, trial, functools.partial(_launch_outcome, future))
                    self._log_progress(study, trial, state, value, start, done_at_start)
        if self.stopped is None and self.spent is None:
            claimed, done, _ = self._counts(study)
            self._say_complete(claimed, done)
        self._fail_unlaunched(study)

    def _fail_unlaunched(self, study: optuna.Study) -> None:
        """This worker's trials still RUNNING after its loop were asked for but never launched (the signal came
        first): interrupted, and queued again."""
        for trial in self._retry(lambda: study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)), "read"):
            if trial.user_attrs.get("worker") == self._worker:  # study.tell takes a Trial, not a FrozenTrial
                self._tell_failed(study, optuna.Trial(study, trial._trial_id), str(Status.INTERRUPTED))

    def _budget_spent(self, study: optuna.Study, start: float) -> bool:
        """Whether hydra.sweeper.timeout, target or patience says to start no more trials; says why, once."""
        if self.spent is None:
            self.spent = self._why_spent(study, start)
            if self.spent is not None:
                log.info(f"the search stops: {self.spent}; no more trials start (running ones finish)")
        return self.spent is not None

    def _why_spent(self, study: optuna.Study, start: float) -> str | None:
        elapsed = time.monotonic() - start
        if self.timeout is not None and elapsed >= self.timeout:
            return f"hydra.sweeper.timeout={self.timeout:g} s reached ({_duration(elapsed)} elapsed)"
        if self.target is None and self.patience is None:
            return None
        trials = self._retry(lambda: study.get_trials(deepcopy=False), "read the trials")
        best = studies.best_trial(study)
        metric = OmegaConf.select(self.cfg, "objective.metric", default="value")
        if best is not None and best.value is not None and self.target is not None:
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            if (best.value >= self.target) if maximize else (best.value <= self.target):
                return (
                    f"trial {best.number} reached the target (hydra.sweeper.target={self.target:g}): "
                    f"{metric} {best.value:.4f}"
                )
        if self.patience is not None:
            finished = sorted(
                (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or studies.own_failure(t)),
                key=lambda t: t.datetime_complete or t.datetime_start,
            )
            since = next((i for i, t in enumerate(finished) if best is not None and t.number == best.number), -1)
            without = len(finished) - since - 1
            if without >= self.patience:
                after = f"since trial {best.number} ({metric} {best.value:.4f})" if best else "without a completed one"
                return (
                    f"{without} finished trials in a row brought no better one {after} "
                    f"(hydra.sweeper.patience={self.patience})"
                )
        return None

    def _check_budget(self, failed: int) -> None:
        if failed > self.max_failure_rate * self.n_trials:
            fail(
                f"The search stopped: {failed} of its {self.n_trials} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate}. Each failed trial's train.log and "
                f"metrics.json (under {self.cfg.hydra.sweep.dir}) say why.",
                EXIT_NOT_COMPLETED,
            )

    def _say_complete(self, claimed: int, done: int) -> None:
        log.info(
            f"the study has {done} finished and {claimed - done} running of its {self.n_trials} "
            f"trials: nothing more to start (raise hydra.sweeper.n_trials for more)"
        )

    @property
    def _worker(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def _ask(self, study: optuna.Study, space: dict, fixed: dict, fixed_overrides: list[str]) -> tuple:
        with studies.quiet_optuna():
            trial = self._retry(study.ask, "ask for a trial")
        if self.grid is None:  # before the parameters are drawn (_configure_trials)
            study.sampler = self._sampler(trial.number)
        # GridSampler keeps one instance: it shuffles its grid by its seed, so a point picked at ask() by one
        # seed would be another point at suggest() under the next; it picks among unvisited points at random.
        (overrides,) = self._configure_trials([trial], space, fixed, fixed_overrides)
        for key, value in fixed.items():  # _configure_trials copies fixed overrides into the trial's attributes
            if isinstance(value, str) and redact(value) != value:
                trial.set_user_attr(key, redact(value))
        name, resume = self._dirname(trial), tuple[str, ...]()
        earlier = studies.continued(study._storage.get_trial(trial._trial_id))
        if earlier is not None:  # a dead or interrupted trial's retry: in its folder, from its last checkpoint
            folder = Path(studies.trial_by_number(study, earlier).user_attrs.get("run_dir", ""))
            if (folder / "checkpoints" / "last.pt").is_file():
                name, resume = folder.name, (f"resume='{folder}'",)
                log.info(f"trial {trial.number} continues trial {earlier} from its last checkpoint ({folder})")
        run_dir = Path(self.cfg.hydra.sweep.dir) / name
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", self._worker)
        job = (f"hydra.sweep.subdir='{name}'", f"++hydra.job.env_set.{search.TRIAL_ENV}={trial.number}", *resume)
        return trial, (*overrides, *job), run_dir

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
        taken = {p.name.split("_", 1)[0] for p in Path(self.cfg.hydra.sweep.dir).glob(f"{trial.number:03d}*")}
        prefix, n = f"{trial.number:03d}", 2
        while prefix in taken:  # a folder left by an earlier study of the same name
            prefix, n = f"{trial.number:03d}-{n}", n + 1
        return f"{prefix}_{values}"

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, outcome_of: Callable[[], Any]
    ) -> tuple[TrialState, float | None]:
        """Tell the study how the job ended: from its Outcome alone. `outcome_of()` returns it, or raises what the
        job (or its launch: a worker process killed) raised."""
        try:
            outcome = outcome_of()
        except DiskFull as e:  # the next trial would hit the same disk: fail this one and stop the worker
            self._tell_failed(study, trial, f"disk full: {e}")
            raise
        except studies.StorageLost:
            raise
        except Exception as e:  # noqa: BLE001 - a job that raised (or whose worker died) is a failed trial
            reason = str(Status.INTERRUPTED) if self.stopped is not None else str(Status.FAILED)
            log.warning(f"trial {trial.number} {reason}: {redact(str(e).splitlines()[0] if str(e) else repr(e))}")
            self._tell_failed(study, trial, reason)
            return TrialState.FAIL, None
        if not isinstance(outcome, Outcome):  # a task function of the user's own returning a number
            value = float(outcome)
            outcome = Outcome(Status.COMPLETED if math.isfinite(value) else Status.FAILED, value)
        if outcome.status == Status.COMPLETED:
            multi = len(study.directions) > 1
            state, values = TrialState.COMPLETE, list(outcome.values) if multi else outcome.value
        elif outcome.status == Status.PRUNED:
            state, values = TrialState.PRUNED, None  # Optuna keeps the last reported value
        else:  # diverged, failed or interrupted: the trial fails, and says why
            self._tell_failed(study, trial, str(outcome.status))
            if outcome.status == Status.INTERRUPTED and self.stopped is None:  # its own handler took the signal
                self.stopped = f"trial {trial.number} {outcome.error}"
            return TrialState.FAIL, None
        frozen = self._retry(lambda: self._finish(study, trial, state, values), f"record trial {trial.number}")
        if frozen.state != state:
            log.warning(
                f"trial {trial.number} had already ended as {frozen.state.name} (marked by another worker "
                f"while the database was unreachable?)"
            )
        if frozen.values:
            return frozen.state, frozen.values[0]
        curve = studies.reported(frozen)  # a pruned trial of a multi-objective study keeps no value: its last report
        return frozen.state, curve[max(curve)] if curve else None

    def _tell_failed(self, study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
        try:
            self._retry(
                lambda: study._storage.set_trial_system_attr(trial._trial_id, studies.FAILURE_ATTR, reason),
                f"record trial {trial.number}",
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # it ended already (failed as stale by another worker)
        except DiskFull:
            log.warning(f"trial {trial.number} could not be recorded as failed: the study's disk is full too")
            return
        self._retry(lambda: self._finish(study, trial, TrialState.FAIL), f"record trial {trial.number}")
        if reason == str(Status.INTERRUPTED):  # queued again: the next start continues it from its checkpoint
            attrs = {**trial.user_attrs, studies.CONTINUES_ATTR: trial.number}
            self._retry(lambda: study.enqueue_trial(trial.params, user_attrs=attrs), f"queue trial {trial.number}")

    @staticmethod
    def _finish(
        study: optuna.Study, trial: optuna.Trial, state: TrialState, values: float | list[float] | None = None
    ) -> optuna.trial.FrozenTrial:
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

    def _log_progress(
        self, study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None, start: float, done0: int
    ) -> None:
        """One line per finished trial: its outcome, the best so far, trials done, time spent and left."""
        _, done, _ = self._counts(study)
        elapsed = time.monotonic() - start
        rate = (done - done0) / elapsed
        if done >= self.n_trials:
            left = "done"
        else:
            left = f"about {_duration((self.n_trials - done) / rate)} left" if rate else "time left unknown"
        metric = OmegaConf.select(self.cfg, "objective.metric", default="value")
        if state == TrialState.FAIL:  # why: diverged, failed, interrupted, ...
            outcome = study._storage.get_trial(trial._trial_id).system_attrs.get(studies.FAILURE_ATTR, "failed")
        elif state == TrialState.PRUNED:
            epoch = max(studies.reported(study._storage.get_trial(trial._trial_id)), default=0)
            outcome = f"pruned after epoch {epoch}: {metric} {value:.4f}"
        else:
            outcome = f"completed: {metric} {value:.4f}"
        best_trial = studies.best_trial(study)
        best = f"best {best_trial.value:.4f} (trial {best_trial.number})" if best_trial else "no completed trial yet"
        if len(study.directions) > 1:
            best = f"Pareto front: {len(self._retry(lambda: study.best_trials, 'read the front'))} trials"
        log.info(
            f"trial {trial.number} {outcome} | {best} | {done} of {self.n_trials} trials | "
            f"{_duration(elapsed)} elapsed, {left}"
        )

    def _confirm(self, study: optuna.Study, fixed: dict, fixed_overrides: list[str]) -> None:
        """Train the top_k completed trials again with `seeds` new seeds each, through the search's launcher, into
        <sweep dir>/confirm/<trial folder>/seed=<s>/. A run already completed there is not trained again, one
        with a checkpoint continues from it. Then each trial's mean and spread over its seeds (its own run
        included) are recorded as a study attribute, ranked, and the best tested against the runner-up."""
        c, folder = self.confirm, Path(self.cfg.hydra.sweep.dir)
        if len(study.directions) > 1:
            log.warning("confirmation ranks trials by one objective: not done for a multi-objective search")
            return
        done = self._retry(lambda: study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), "read trials")
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        top = sorted(done, key=lambda t: t.value if maximize else -t.value, reverse=True)[: c.top_k]
        if not top:
            log.warning("no completed trial to confirm")
            return
        base = int(OmegaConf.select(self.cfg, "seed", default=0))
        seeds = [base + i for i in range(1, c.seeds + 1)]
        repeat = {"seed", "data.split_seed"}  # what a confirmation run sets itself
        fixed = {k: v for k, v in fixed.items() if k not in repeat}
        fixed_overrides = [o for o in fixed_overrides if o.split("=", 1)[0].lstrip("+~") not in repeat]
        jobs, trained = [], 0
        for t in top:
            name = Path(t.user_attrs["run_dir"]).name
            for seed in seeds:
                sub = f"confirm/{name}/seed={seed}"
                if read_status(folder / sub) == Status.COMPLETED:
                    trained += 1
                    continue
                resume = (f"resume='{folder / sub}'",) if (folder / sub / "checkpoints" / "last.pt").is_file() else ()
                jobs.append(
                    (
                        *(f"{k}={v}" for k, v in {**t.params, **fixed}.items()),
                        *fixed_overrides,
                        f"seed={seed}",
                        *((f"data.split_seed={seed}",) if c.split_seed else ()),
                        f"hydra.sweep.subdir='{sub}'",
                        f"++hydra.job.env_set.{CONFIRMS_ENV}={t.number}",
                        *resume,
                    )
                )
        log.info(
            f"confirming trials {', '.join(str(t.number) for t in top)} with seeds {seeds}"
            f"{' and as many validation splits' if c.split_seed else ''}: {len(jobs)} runs to train"
            + (f" ({trained} done already)" if trained else "")
        )
        if jobs:
            assert self.launcher is not None
            self._launching = True
            try:
                returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            except KeyboardInterrupt:  # the basic launcher, outside a run's training loop
                self.stopped, returns = self.stopped or "interrupted", []
            finally:
                self._launching = False
            self.job_idx += len(jobs)
            for ret in returns:
                with suppress(Exception):  # a run that raised is a failed run: the leaderboard shows it
                    if ret.return_value.status == Status.INTERRUPTED and self.stopped is None:
                        self.stopped = "a confirmation run was interrupted"
        self._record_confirmation(study, [t.number for t in top])

    def _record_confirmation(self, study: optuna.Study, numbers: list[int]) -> None:
        runs = [r for r in leaderboard.load_runs(Path(self.cfg.hydra.sweep.dir)) if leaderboard.number(r) is not None]
        groups = [g for g in leaderboard.grouped(runs) if g.first.get("trial") in numbers and len(g.runs) > 1]
        trials = {}
        for rank, g in enumerate(groups, 1):
            test = g.test()
            summary = {
                "rank": rank,
                "n": len(g.done),
                "mean": g.mean,
                "sd": g.sd,
                "interval95": [g.mean - g.interval(), g.mean + g.interval()],
                "seeds": [leaderboard.seed_of(r) for r in g.done],
                "test_acc_mean": sum(test) / len(test) if test else None,
                "runs": len(g.runs),
            }
            number = g.first["trial"]
            # Optuna keeps a finished trial's attributes as they were (UpdateFinishedTrialError): the
            # confirmation is the study's attribute, one per trial (optuna-dashboard: Study User Attributes).
            self._retry(functools.partial(study.set_user_attr, f"confirmed trial {number}", summary), "record")
            trials[number] = summary
            log.info(
                f"confirmed trial {number}: {self.cfg.objective.metric} {g.mean:.4f} +/- {g.sd:.4f} over "
                f"{len(g.done)} seeds ({len(g.runs) - len(g.done)} not completed)"
            )
        said = leaderboard.verdict(groups)
        if said:
            log.info(said)
        if groups and len(groups[0].done) > 1:
            best = groups[0].first
            self.confirmed = {
                "best_trial": best["trial"],
                "best_params": dict(studies.trial_by_number(study, best["trial"]).params),
                "mean": groups[0].mean,
                "sd": groups[0].sd,
                "verdict": said,
                "trials": trials,
            }

    def _write_results(self, study: optuna.Study) -> None:
        if len(study.directions) > 1:  # as the released sweeper writes a multi-objective result: the front
            front = sorted(study.best_trials, key=lambda t: t.number)
            metrics = [o["metric"] for o in record.objectives(self.cfg)]
            solutions: dict[str, Any] = {
                "name": "optuna",
                "study": study.study_name,
                "objectives": metrics,
                "solutions": [{"trial": t.number, "params": t.params, "values": t.values} for t in front],
            }
            folder = Path(self.cfg.hydra.sweep.dir)
            folder.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create(solutions), folder / "optimization_results.yaml")
            log.info(f"Pareto front ({', '.join(metrics)}): trials {', '.join(str(t.number) for t in front)}")
            return
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
        if self.confirmed:  # the confirmed choice, beside the search's own
            results["confirmed"] = self.confirmed
        folder = Path(self.cfg.hydra.sweep.dir)  # a late worker that started no trial has not made it yet
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), folder / "optimization_results.yaml")
        log.info(f"Best: trial {best.number}, value {best.value:.4f}, parameters {best.params}")


def _job_outcome(ret: Any) -> Any:
    return ret.return_value  # Hydra's JobReturn: raises what the job raised


def _launch_outcome(future: Future) -> Any:
    (ret,) = future.result()  # a launch of one job: raises what the launch raised (a worker process killed)
    return ret.return_value


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
