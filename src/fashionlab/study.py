"""The study's storage, shared by the sweeper and the jobs it launches: opening it, heartbeats, riding out a restart.

`hydra.sweeper.storage` is one of:
- a database URL (`postgresql+psycopg2://user@host/db`, `sqlite:///file.db`): Optuna's RDBStorage, for workers on
  many machines. The pool pings a connection before using it, so a restarted server costs one reconnect.
- a file path: Optuna's journal file, which locks the file for every write, so any number of workers on one
  machine (or a shared file system) can use it. Optuna advises against SQLite for parallel workers (lock errors).
- null: in memory, for one process (the basic launcher only).

Both stored kinds send heartbeats: a trial whose worker died stops beating and is failed by the next worker
that starts or asks for a trial, once `grace_period` seconds have passed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState

from fashionlab.config import UserError
from fashionlab.record import DISK_FULL, DiskFull, redact
from fashionlab.status import Status

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper says what it does, in Hydra's log format

HEARTBEAT_ATTR = "fashionlab:heartbeat"  # the journal file's heartbeat: a trial system attribute (unix time)
FAILURE_ATTR = "fashionlab:failure"  # why a trial failed (a Status, or why it was not needed), set before FAIL
CURVE_ATTR = "fashionlab:curve"  # a multi-objective trial's first objective after each epoch (search.FirstObjective)
IMPORTED_ATTR = "fashionlab:imported"  # a finished run added as a trial (warm_start_from): the run's folder
CONTINUES_ATTR = "fashionlab:continues"  # an interrupted trial's retry: the number of the trial it continues
OWN_FAILURES = (str(Status.DIVERGED), str(Status.FAILED))  # a trial's own: counted in n_trials and the budget
_IN_MEMORY: dict[str, optuna.Study] = {}  # storage=null: the sweeper's study, for jobs in the same process
_JOURNALS: dict[tuple, tuple[JournalFileStorage, tuple[int, int]]] = {}  # open journal storages (_journal)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna warns each time heartbeats are used: they are "experimental", and outside Study.optimize, where
    Optuna would beat itself. Here the jobs and the sweeper beat (Heartbeat): nothing to warn about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class StorageLost(UserError):
    """The storage stayed unreachable for longer than hydra.sweeper.storage_timeout."""


class JournalFile(JournalFileBackend):
    """Optuna's journal file, made to survive a write that did not finish.

    A disk that fills during an append, or a node lost mid-write on a shared file system, leaves an incomplete
    last record. Optuna's reader skips it, but the next append is glued onto it, and from then on every worker
    that opens the study dies on that line. Here the file's lock is taken and such a tail cut off when the file
    is opened and before every append (that write did not happen; every complete record stays), and an append
    that fails takes back what it wrote. A corrupt record with others after it is not guessed at: one message
    names the file and line, and the file is left as it was.
    """

    def __init__(self, path: str):
        super().__init__(path)
        with get_lock_file(self._lock):
            self._cut_torn_tail()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:  # json's JSONDecodeError, or Optuna's "Invalid log format" (a line with no newline)
            raise UserError(self._corrupt()) from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs).encode()
        with get_lock_file(self._lock):
            self._cut_torn_tail()
            with open(self._file_path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                try:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:  # a full disk: no record half-written
                    f.truncate(size)
                    raise

    def bytes_read(self) -> int:
        """How far into the file the records read so far reach (Optuna keeps each record's offset)."""
        return max(self._log_number_offset.values())

    def _cut_torn_tail(self) -> None:
        with open(self._file_path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            keep, end = 0, size
            while end > 0:  # back to the last complete line
                start = max(0, end - 65536)
                f.seek(start)
                newline = f.read(end - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            f.truncate(keep)
            os.fsync(f.fileno())
        log.warning(
            f"the study's journal {self._file_path} ended in an incomplete record ({size - keep} bytes: a write "
            f"that did not finish, e.g. on a full disk or a lost node): it was dropped, and every complete record "
            f"is kept"
        )

    def _corrupt(self) -> str:
        with open(self._file_path, "rb") as f:
            lines = f.read().split(b"\n")
        bad = next((n for n, line in enumerate(lines, 1) if line and not _is_json(line)), len(lines))
        return (
            f"The study's journal {self._file_path} has a corrupt record at line {bad} of {len(lines) - 1} (not a "
            f"whole JSON record: the file was damaged, e.g. edited or copied while it was written). It was left as "
            f"it was. Restore it from a backup, or keep only the records before that line (`head -n {bad - 1} "
            f"FILE > FILE.fixed`, then move FILE.fixed over FILE: the trials those lines record stay), and run again."
        )


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


class JournalFileStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal file storage, with heartbeats kept as a system attribute of each running trial."""

    def __init__(
        self,
        path: str,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback: Callable | None = None,
    ):
        self.backend = JournalFile(path)
        super().__init__(self.backend)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Running trials that have beaten once, but not in the last grace period (as RDBStorage decides).

        A retried trial starts with its dead predecessor's attributes: its own start time counts as a beat.
        """
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        now = time.time()
        return [
            t._trial_id
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if HEARTBEAT_ATTR in t.system_attrs
            and now - max(t.system_attrs[HEARTBEAT_ATTR], t.datetime_start.timestamp() if t.datetime_start else 0)
            > grace
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable | None:
        return self.stale_trial_callback


def _transient_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises while its server is away (restarting, or the network is down)."""
    from sqlalchemy.exc import DBAPIError

    return optuna.exceptions.StorageInternalError, DBAPIError, OSError


def _first_line(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__ or e
    text = str(cause).strip() or type(cause).__name__
    return redact(text.splitlines()[0])


def open_storage(
    storage: str | None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback: Callable | None = None,
) -> BaseStorage | None:
    """The storage object for `hydra.sweeper.storage`; a mistake in it is one UserError with the password masked."""
    if storage is None:
        return None
    storage = str(storage)
    if "://" not in storage:
        try:
            Path(storage).parent.mkdir(parents=True, exist_ok=True)
            return _journal(storage, heartbeat_interval, grace_period, stale_trial_callback)
        except OSError as e:
            raise UserError(
                f"The study's journal file {storage} cannot be created ({e.strerror}). Set "
                f"hydra.sweeper.storage to a writable path, or to a database URL."
            ) from None
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    if storage.startswith("sqlite:///"):  # SQLite creates the file, not its folder
        Path(storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(8):
        try:
            with quiet_optuna():
                return RDBStorage(
                    storage,
                    engine_kwargs={"pool_pre_ping": True},
                    grace_period=grace_period,
                    heartbeat_interval=heartbeat_interval,
                    heartbeat_stale_trial_callback=stale_trial_callback,
                )
        except (IntegrityError, ProgrammingError):
            # Two workers creating Optuna's tables in an empty database at the same moment: one loses the race
            # (e.g. UniqueViolation on CREATE TYPE). The tables exist now, or will in a moment: try again.
            time.sleep(random.uniform(0.2, 1.0))
            if attempt == 7:
                raise
        except Exception as e:  # noqa: BLE001 - drivers raise their own types: one message for all
            raise UserError(
                f"Cannot open the study's storage {redact(storage)}: {_first_line(e)}. Check the URL "
                f"(driver, user, host, port, database), that the server is running, and the password "
                f"(~/.pgpass or PGPASSWORD; README, 'Many workers')."
            ) from None
    raise AssertionError("unreachable: the loop returns or raises")


def _journal(
    path: str, heartbeat_interval: int | None, grace_period: int | None, stale_trial_callback: Callable | None
) -> JournalFileStorage:
    """The journal file's storage, one per file and process. Opening a journal replays it from its first record
    (2,000 finished trials: about 40,000 records); a process that runs trial after trial (the sweeper and its jobs
    under the basic launcher, a joblib worker) keeps the storage it opened and reads only the records added since.
    A file that was replaced (another inode: a study deleted and started again, a repaired journal moved into
    place) or that is shorter than what was read of it (rewritten in place) is opened and read afresh."""
    stat = os.stat(path) if os.path.exists(path) else None
    key = (os.path.abspath(path), heartbeat_interval, grace_period)
    known = _JOURNALS.get(key)
    if known is not None and stat is not None and known[1] == (stat.st_dev, stat.st_ino):
        storage = known[0]
        if stat.st_size >= storage.backend.bytes_read():
            storage.stale_trial_callback = stale_trial_callback or storage.stale_trial_callback
            return storage
    storage = JournalFileStorage(path, heartbeat_interval, grace_period, stale_trial_callback)
    stat = os.stat(path)
    _JOURNALS[key] = (storage, (stat.st_dev, stat.st_ino))
    return storage


def retrying(call: Callable, what: str, timeout: float) -> Any:
    """call(); while the storage is unreachable, say so and try again, for up to `timeout` seconds."""
    transient = _transient_errors()
    start, delay = time.monotonic(), 1.0
    while True:
        try:
            return call()
        except transient as e:
            if isinstance(e, OSError) and e.errno in DISK_FULL:  # not passing: waiting would not help
                raise DiskFull(
                    f"The study's storage cannot be written: its disk is full ({what}: {e.strerror}). This "
                    f"worker stops; the trials' run folders and checkpoints are intact. Free some space and start "
                    f"the worker again."
                ) from None
            waited = time.monotonic() - start
            if waited >= timeout:
                raise StorageLost(
                    f"The study's storage was unreachable for {waited:.0f} s ({what}: "
                    f"{_first_line(e)}); this worker stops. The trial's run folder and checkpoint "
                    f"are intact; start the worker again once the database is back (raise "
                    f"hydra.sweeper.storage_timeout to wait longer)."
                ) from None
            log.warning(
                f"the study's storage is unreachable ({what}: {_first_line(e)}); retrying "
                f"(waited {waited:.0f} of {timeout:.0f} s)"
            )
            time.sleep(delay)
            delay = min(2 * delay, 10.0)


def load_study(study_name: str, storage: BaseStorage | None, **kwargs: Any) -> optuna.Study:
    if storage is None:
        return _IN_MEMORY[study_name]
    return optuna.load_study(study_name=study_name, storage=storage, **kwargs)


def remember_in_memory(study: optuna.Study) -> None:
    _IN_MEMORY[study.study_name] = study


class Heartbeat:
    """While the with-block runs, a thread records a heartbeat for each trial every heartbeat interval.

    A failed beat (the database restarting) is logged and tried again at the next interval; it never stops
    the training. A trial that has finished is dropped.
    """

    def __init__(self, storage: BaseStorage | None, trial_ids: list[int], always: bool = False):
        """`always`: beat even while trial_ids is empty (the sweeper adds trials to it as it starts them)."""
        self.storage, self.trial_ids, self.always = storage, list(trial_ids), always
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.storage is not None and is_heartbeat_enabled(self.storage) and (self.trial_ids or self.always):
            self._thread = threading.Thread(target=self._run, name="fashionlab-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        storage: Any = self.storage  # a heartbeat storage: __enter__ starts this thread only for one
        interval = storage.get_heartbeat_interval()
        failing = False
        while True:
            for trial_id in list(self.trial_ids):
                try:
                    storage.record_heartbeat(trial_id)
                    failing = False
                except optuna.exceptions.UpdateFinishedTrialError:
                    self.trial_ids.remove(trial_id)
                except Exception as e:  # noqa: BLE001 - a thread must not die of a passing database error
                    if not failing:
                        log.warning(f"heartbeat not recorded ({_first_line(e)}); trying again every {interval} s")
                    failing = True
            if self._stop.wait(interval):
                return


def fail_stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Mark RUNNING trials without a heartbeat for longer than the grace period FAIL; return them."""
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return []
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in before]


def continued(trial: FrozenTrial) -> int | None:
    """The earlier trial this one takes over: a dead worker's (Optuna's retry sets `failed_trial`) or an
    interrupted one (the sweeper queues it again with CONTINUES_ATTR). Its checkpoint is where this one goes on."""
    number = trial.system_attrs.get("failed_trial")
    return trial.user_attrs.get(CONTINUES_ATTR) if number is None else number


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    return study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def count_trials(trials: list[FrozenTrial], below: int | None = None) -> tuple[int, int, int]:
    """(trials that count towards n_trials, of which finished, of which failed by themselves).

    A trial counts if it completed, was pruned, failed by itself, or is running. One that was interrupted
    or whose worker died does not: it is replaced (a dead one by its retry), so the study reaches n_trials.
    Nor does a finished run added as a trial (hydra.sweeper.warm_start_from): the study did not train it.
    `below`: count only the trials numbered below it.
    """
    trials = [t for t in trials if (below is None or t.number < below) and IMPORTED_ATTR not in t.system_attrs]
    own = [t for t in trials if own_failure(t)]
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)] + own
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return len(done) + len(running), len(done), len(own)


def reported(trial: FrozenTrial) -> dict[int, float]:
    """What the trial reported after each epoch: its intermediate values, or a multi-objective trial's curve."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    return {int(e): v for e, v in trial.system_attrs.get(CURVE_ATTR, {}).items()}


def own_failure(trial: FrozenTrial) -> bool:
    """A trial that failed by itself (diverged, raised): not one interrupted, not needed, or whose worker died."""
    return trial.state == TrialState.FAIL and trial.system_attrs.get(FAILURE_ATTR) in OWN_FAILURES


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except (ValueError, RuntimeError):  # no completed trial; a multi-objective study (a front, not one best)
        return None
