"""The study's journal file (Optuna's JournalFileBackend), made to survive a write that did not finish, with
heartbeats, and kept open per process.

Optuna's journal file locks the file for every write, so any number of workers on one machine (or a shared file
system) can use it. Its heartbeats are a system attribute of each running trial (HEARTBEAT_ATTR).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Generator
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from fashionlab.config import UserError
from fashionlab.search.optuna_internals import (
    BaseHeartbeat,
    get_lock_file,
    journal_bytes_read,
    journal_lock,
    journal_path,
)

log = logging.getLogger(__name__)
HEARTBEAT_ATTR = "fashionlab:heartbeat"  # the journal file's heartbeat: a trial system attribute (unix time)
_OPEN: dict[
    tuple, tuple[JournalFileStorage, tuple[int, int]]
] = {}  # journal storages open in this process (open_journal)


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
        with get_lock_file(journal_lock(self)):
            self._cut_torn_tail()

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:  # json's JSONDecodeError, or Optuna's "Invalid log format" (a line with no newline)
            raise UserError(self._corrupt()) from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs).encode()
        with get_lock_file(journal_lock(self)):
            self._cut_torn_tail()
            with open(journal_path(self), "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                try:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:  # a full disk: no record half-written
                    f.truncate(size)
                    raise

    def bytes_read(self) -> int:
        return journal_bytes_read(self)

    def _cut_torn_tail(self) -> None:
        with open(journal_path(self), "r+b") as f:
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
            f"the study's journal {journal_path(self)} ended in an incomplete record ({size - keep} bytes: a write "
            f"that did not finish, e.g. on a full disk or a lost node): it was dropped, and every complete record "
            f"is kept"
        )

    def _corrupt(self) -> str:
        with open(journal_path(self), "rb") as f:
            lines = f.read().split(b"\n")
        bad = next((n for n, line in enumerate(lines, 1) if line and not _is_json(line)), len(lines))
        return (
            f"The study's journal {journal_path(self)} has a corrupt record at line {bad} of {len(lines) - 1} (not a "
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


def open_journal(
    path: str, heartbeat_interval: int | None, grace_period: int | None, stale_trial_callback: Callable | None
) -> JournalFileStorage:
    """The journal file's storage, one per file and process. Opening a journal replays it from its first record
    (2,000 finished trials: about 40,000 records); a process that runs trial after trial (the sweeper and its jobs
    under the basic launcher, a joblib worker) keeps the storage it opened and reads only the records added since.
    A file that was replaced (another inode: a study deleted and started again, a repaired journal moved into
    place) or that is shorter than what was read of it (rewritten in place) is opened and read afresh."""
    stat = os.stat(path) if os.path.exists(path) else None
    key = (os.path.abspath(path), heartbeat_interval, grace_period)
    known = _OPEN.get(key)
    if known is not None and stat is not None and known[1] == (stat.st_dev, stat.st_ino):
        storage = known[0]
        if stat.st_size >= storage.backend.bytes_read():
            storage.stale_trial_callback = stale_trial_callback or storage.stale_trial_callback
            return storage
    storage = JournalFileStorage(path, heartbeat_interval, grace_period, stale_trial_callback)
    stat = os.stat(path)
    _OPEN[key] = (storage, (stat.st_dev, stat.st_ino))
    return storage
