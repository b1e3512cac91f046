"""A trial as a SLURM job (hydra/launcher=slurm): submitted as Hydra's submitit launcher submits it, and watched
here, so that a job SLURM cancels, kills or loses is known within seconds, with accounting or without.

Hydra's launcher waits on submitit's `result()`, which without SLURM accounting (no sacct) sees every job as
UNKNOWN and waits for ever on one that ended without a result. Here the job's result file is looked for, and
`squeue` asked for its state: a job that left the queue, or whose state is final, without a result is lost
(JobLost), and its trial is failed and queued again (tell.py). A requeued job (preemption, a time limit, `scontrol
requeue`) stays in the queue, PENDING then RUNNING: it is waited for, and continues its checkpoint (run.py).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Any

from fashionlab.search.hydra_internals import submit
from fashionlab.search.tell import JobLost

log = logging.getLogger(__name__)
# Job states after which no result will come (squeue's %T). A job requeued passes through REQUEUED, PENDING, ...
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
POLL_S = 2.0  # how often a waiting job's state is asked (squeue)
GRACE_S = 10.0  # how long a result file may lag behind its job's end (a shared file system)


class SlurmJob:
    """One trial's SLURM job."""

    def __init__(self, launcher: Any, overrides: list[str], job_idx: int):
        self.job = submit(launcher, overrides, job_idx)
        self.id = str(self.job.job_id)
        self.submitted = time.time()
        self.interrupted = 0.0  # when the sweeper last asked it to stop
        self.cancelled = False

    def wait(self, stop: threading.Event) -> Any:
        """The job's JobReturn once its result is there; JobLost if it ended without one."""
        ended_at: float | None = None
        while True:
            if self.job.paths.result_pickle.exists():
                return self.job.results()[0]
            state = self.state()
            if state is None or state in ENDED:
                ended_at = ended_at or time.monotonic()
                if self.cancelled or time.monotonic() - ended_at > GRACE_S:  # no result comes of a job we cancelled
                    said = "left the queue" if state is None else f"ended {state}"
                    raise JobLost(
                        f"SLURM job {self.id} {said} without a result (cancelled, killed, out of memory, or its node "
                        f"lost); its log: {self.job.paths.stderr}"
                    )
            else:
                ended_at = None
            stop.wait(POLL_S)

    def state(self) -> str | None:
        """squeue's state of the job (RUNNING, PENDING, ...); None once it left the queue. A squeue that does not
        answer (slurmctld restarting) counts as RUNNING: the job is waited for, not given up."""
        try:
            out = subprocess.run(
                ["squeue", "--noheader", "--jobs", self.id, "--format", "%T"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return "RUNNING"
        if out.returncode != 0:
            return None if "Invalid job id" in out.stderr else "RUNNING"
        states = out.stdout.split()
        return states[0] if states else None

    def stop(self, now: bool) -> None:
        """Ask the job to stop: a running one gets SIGINT (its trainer writes a checkpoint at its batch and the job
        returns interrupted), one still waiting is cancelled; `now`: cancelled whatever it does. SIGINT is sent
        again every 10 s while the job runs (a job whose step had not started yet did not get it)."""
        if self.cancelled or (not now and time.monotonic() - self.interrupted < 10):
            return
        self.interrupted = time.monotonic()
        running = self.state() in ("RUNNING", "COMPLETING")
        self.cancelled = now or not running
        command = ["scancel", self.id] if self.cancelled else ["scancel", "--signal=INT", self.id]
        subprocess.run(command, capture_output=True, timeout=30, check=False)
