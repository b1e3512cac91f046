"""Stop requests by signal (Ctrl-C, SIGTERM) in the processes of a search: recorded, never raised.

A single run keeps Python's default outside training (Ctrl-C raises KeyboardInterrupt and the run exits 130) and
the Trainer's own handler while it trains (the batch finishes, a checkpoint is written). A process of a search,
the sweeper or a worker that runs trials (joblib's, submitit's), must not be interrupted at an arbitrary point: an
exception raised while a job is being built, handed over or recorded would leave its trial RUNNING, and joblib
answers a worker's KeyboardInterrupt by killing every worker of the pool. There `install` makes SIGINT and SIGTERM
recorded, nothing more; the Trainer picks a recorded signal up when it trains (it stops after its next batch), the
sweeper when it next looks. Kept free of torch.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
STOPS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the signals this process has received, oldest first
_owner: str | None = None  # who installed the recording handlers here: "sweeper" or "job"


def install(owner: str, signums: tuple[int, ...] = STOPS) -> None:
    """Record these signals (SIGINT and SIGTERM) in this process from now on. A no-op outside the main thread
    (Python delivers signals there only), and in the sweeper's own process for a job it runs (the basic launcher)."""
    global _owner
    if _owner == "sweeper" or threading.current_thread() is not threading.main_thread():
        return
    for s in signums:
        signal.signal(s, _record)
    _owner = owner


@contextmanager
def recorded(owner: str) -> Iterator[None]:
    """install(owner) for the with-block; then the handlers this process had before, and nothing received."""
    global _owner
    previous = {s: signal.getsignal(s) for s in STOPS}
    clear()
    install(owner)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, handler in previous.items():
                signal.signal(s, handler)
        _owner = None
        clear()


@contextmanager
def caught(handler: Any, signums: tuple[int, ...] = STOPS) -> Iterator[None]:
    """`handler` for these signals during the with-block (a trainer's clean stop), then the previous handlers.
    Outside the main thread (some launchers run jobs in threads) nothing changes: no clean stop, checkpoints still
    work."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def owner() -> str | None:
    return _owner


def _record(signum: int, frame: Any) -> None:
    if not _received:
        log.warning(f"signal {signum}: stopping after the current batch")
    record(signum)


def record(signum: int) -> None:
    _received.append(signum)


def request(signum: int) -> None:
    """A stop signal reached this process while a trainer had the handler: a sweeper that runs here (the basic
    launcher) stops as well."""
    if _owner == "sweeper":
        record(signum)


def pending() -> int | None:
    """The first stop signal this process received, if any."""
    return _received[0] if _received else None


def received() -> int:
    """How many stop signals this process received (a second Ctrl-C means: stop now)."""
    return len(_received)


def clear() -> None:
    """Forget the signals received: a worker process starting its next job (the sweeper's own are kept)."""
    _received.clear()
