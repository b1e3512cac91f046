"""Writing files safely: the one atomic writer, a full disk said in one paragraph, and no password in any text.

Every file the project writes (checkpoints, metrics.json, run_info.json, the study's results, the leaderboard,
plots, the image cache) goes through `commit`: a temporary file beside the target, flushed and synced to disk,
then renamed over it. A kill at any moment leaves the old file or the new one, whole; a write that fails (a full
disk) removes its temporary file. Kept free of torch.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from fashionlab.config import StopWorker

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, or over the user's quota: the same for a run


def commit(path: Path, write: Callable[[Path], object]) -> None:
    """write(tmp), sync it, rename it over `path`, sync the folder. A failed write leaves no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text or bytes) to `path` atomically (see commit)."""
    if isinstance(data, str):
        commit(path, lambda tmp: tmp.write_text(data))
    else:
        commit(path, lambda tmp: tmp.write_bytes(data))


def _sync_folder(folder: Path) -> None:
    """The rename itself reaches the disk only when the folder is synced (a power cut could undo it otherwise)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened for reading (some network file systems): the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DiskFull(StopWorker):
    """A write failed for lack of space: the run (or the search's worker) stops, saying what survived."""


def disk_full(run_dir: Path, error: OSError) -> DiskFull:
    """The one paragraph for a full disk: which folder, the last good checkpoint, how to go on."""
    last = run_dir / "checkpoints" / "last.pt"
    where = f" writing {error.filename}" if error.filename else ""
    if last.is_file():
        then = (
            f"The last good checkpoint is {last}: free some space (or move the run folder to a disk with room) and "
            f"continue it with: python src/train.py resume={run_dir}"
        )
    else:
        then = "No checkpoint was written yet: free some space and start the run again."
    return DiskFull(f"The disk holding {run_dir} is full ({error.strerror}{where}); the run stopped. {then}")


def quiet_disk_full_in_threads() -> None:
    """A background writer (TensorBoard's) that hits a full disk prints a traceback from its thread; the job
    reports the full disk itself, in one paragraph. So a thread's disk-full error is not printed again, and a log
    line that does not fit is dropped rather than printed with a traceback."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_FULL):
            default(args)

    threading.excepthook = hook
    logging.raiseExceptions = False


# `scheme://user:password@host` and `password=...` (a libpq keyword or URL query): the password becomes ***.
_URL_PASSWORD = re.compile(r"([a-zA-Z][\w+.-]*://[^/\s:@]*):[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)[^\s&]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`, anywhere in `text`."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", str(text)))
