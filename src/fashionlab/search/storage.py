"""The study's storage, shared by the sweeper and the jobs it launches: opening it, heartbeats, riding out a restart.

`hydra.sweeper.storage` is one of:
- a database URL (`postgresql+psycopg2://user@host/db`, `sqlite:///file.db`): Optuna's RDBStorage, for workers on
  many machines. The pool pings a connection before using it, so a restarted server costs one reconnect.
- a file path: Optuna's journal file, which locks the file for every write, so any number of workers on one
  machine (or a shared file system) can use it. Optuna advises against SQLite for parallel workers (lock errors).
- null: in memory, for one process (the basic launcher only).

Both stored kinds send heartbeats: a trial whose worker died stops beating and is failed by the next worker
that starts or asks for a trial, once `grace_period` seconds have passed. Every call to the storage goes through
`retrying`, which rides out a database restart for up to `storage_timeout` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from fashionlab.config import StopWorker, UserError
from fashionlab.files import DISK_FULL, DiskFull, redact
from fashionlab.search.journal import open_journal
from fashionlab.search.optuna_internals import is_heartbeat_enabled
from fashionlab.search.optuna_internals import storage as storage_of

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper says what it does, in Hydra's log format
_IN_MEMORY: dict[str, optuna.Study] = {}  # storage=null: the sweeper's study, for jobs in the same process


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna warns each time heartbeats are used: they are "experimental", and outside Study.optimize, where
    Optuna would beat itself. Here the jobs and the sweeper beat (Heartbeat): nothing to warn about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class StorageLost(StopWorker):
    """The storage stayed unreachable for longer than hydra.sweeper.storage_timeout."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises while its server is away (restarting, or the network is down)."""
    from sqlalchemy.exc import DBAPIError  # a quarter of a second to import: only when a storage call is made

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
            return open_journal(storage, heartbeat_interval, grace_period, stale_trial_callback)
        except OSError as e:
            raise UserError(
                f"The study's journal file {storage} cannot be created ({e.strerror}). Set "
                f"hydra.sweeper.storage to a writable path, or to a database URL."
            ) from None
    # SQLAlchemy takes a quarter of a second to import: only for a database, not for a journal file.
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
    if not is_heartbeat_enabled(storage_of(study)):
        return []
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with quiet_optuna():
        optuna.storages.fail_stale_trials(study)
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in before]
