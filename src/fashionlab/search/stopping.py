"""The sweeper's side of a stop: SIGINT or SIGTERM to the sweeper (Ctrl-C, `kill`, SLURM at preemption or time
limit) starts no new trial, and asks the running jobs to stop after their current batch; a second signal stops
them at once.

The sweeper's own handler only records the signal (fashionlab/signals.py); the loop looks every half second and
forwards the stop to where its jobs run (loop.Slots):
- in this process (the basic launcher): the trainer picks the recorded signal up itself;
- in other processes of this machine (joblib's workers, submitit's local jobs): SIGINT to each process below
  this one that runs a job, which the job's own handlers answer (they catch SIGTERM: a pool's idle worker and
  submitit's local controller are left alone, since they answer SIGINT with a traceback, or by killing their job
  before it has written its checkpoint); a second signal: SIGKILL;
- SLURM jobs: `scancel --signal=INT` to a running job, `scancel` to one still waiting (slurm.py).
The jobs then end as interrupted: recorded so, queued again, continued from their checkpoints by the next start.
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path


def stop_local(sent: dict[int, int], now: bool) -> None:
    """Signal the processes below this one that run a job: SIGINT once each (SIGKILL when `now`). `sent`
    remembers which process got what."""
    wanted = signal.SIGKILL if now else signal.SIGINT
    for pid in running_jobs():
        if sent.get(pid) == wanted:
            continue
        with suppress(ProcessLookupError):
            os.kill(pid, wanted)
        sent[pid] = wanted


def running_jobs() -> list[int]:
    """The processes below this one that run a job of the search: they catch SIGTERM (the job's handlers, or
    submitit's in a submitit job), and are not submitit's local controller. Read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with suppress(OSError, ValueError):
            if (
                _catches(pid, signal.SIGTERM)
                and b"submitit.local._local" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                found.append(pid)
    return found


def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (/proc/PID/status, SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False
