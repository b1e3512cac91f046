"""A throwaway single-node SLURM cluster for the tests, started as root from Debian's packages (slurmctld, slurmd,
slurm-client, munge; .ci/run installs them) in a temporary folder: its own munge key and socket, state, spool, logs
and pid files there, no systemd, no cgroups. Stopped by its process ids; nothing is left running.

    with Cluster() as cluster:          # or the `slurm` fixture (conftest.py)
        subprocess.run(["sbatch", ...], env=cluster.env)

Its settings make a requeued job start again in seconds rather than minutes (`cred_expire=10`, a scheduler pass
every 2 s) and SLURM's kill after SIGTERM come after 5 s (`KillWait`). Its two ports are free ones, not SLURM's
6817/6818: a cluster left by another test run cannot stand in its way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "the SLURM daemons of the test cluster run as root"
    absent = [d for d in (*DAEMONS, "sbatch", "squeue", "scancel", "scontrol") if shutil.which(d) is None]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install slurmctld slurmd slurm-client munge; .ci/run does)"
    return None


class Cluster:
    """One node, `localhost`, with the machine's CPUs and a little less than its memory; partition `debug`."""

    def __init__(self, kill_wait: int = 5):
        self.dir = Path(tempfile.mkdtemp(prefix="fashionlab-slurm-"))
        self.dir.chmod(0o711)
        self.kill_wait = kill_wait
        self.conf = self.dir / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        _subreaper(True)  # slurmstepd daemonizes: it is this process's to wait for, not init's (which may not)
        d = self.dir
        socket_dir = d / "munge"
        socket_dir.mkdir(mode=0o711)
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._daemon(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={socket_dir / 'munge.sock'}",
                f"--key-file={key}",
                f"--pid-file={d / 'munged.pid'}",
                f"--log-file={d / 'munged.log'}",
                f"--seed-file={d / 'munged.seed'}",
                "--force",
            ],
        )
        deadline = time.time() + 10
        while not (socket_dir / "munge.sock").exists() and time.time() < deadline:
            time.sleep(0.05)
        cpus, memory = self._node()
        ports = _free_ports(2)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=fashionlab",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={socket_dir / 'munge.sock'},cred_expire=10",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'slurmd.log'}",
                    f"SlurmctldPort={ports[0]}",
                    f"SlurmdPort={ports[1]}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "SchedulerParameters=sched_interval=2,bf_interval=2",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    f"KillWait={self.kill_wait}",
                    "MinJobAge=300",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
                    "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        for folder in ("state", "spool"):
            (d / folder).mkdir()
        self._daemon("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._daemon("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        deadline = time.time() + 30
        while time.time() < deadline:
            out = self.run("sinfo", "--noheader", "--format=%t", check=False).stdout.strip()
            if out in ("idle", "mix", "alloc"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the test cluster's node did not become idle: {out!r}\n{self.logs()}")

    def _node(self) -> tuple[int, int]:
        """slurmd -C: the CPUs and memory this machine has (a node that claims more is drained)."""
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        cpus = int(re.search(r"CPUs=(\d+)", out).group(1))  # type: ignore[union-attr]
        memory = int(re.search(r"RealMemory=(\d+)", out).group(1))  # type: ignore[union-attr]
        return cpus, max(512, memory - 1024)

    def _daemon(self, name: str, command: list[str]) -> None:
        """A daemon in the foreground, as a child of this process: it is waited for (no zombie) when stopped."""
        with open(self.dir / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir
            )

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def jobs(self) -> list[str]:
        """The jobs in the queue, as `id state` lines (finished ones stay listed for MinJobAge)."""
        return self.run("squeue", "--noheader", "--all", "--format=%i %T").stdout.split("\n")[:-1]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.dir.glob("*.log")))

    def stop(self) -> None:
        """Cancel every job and wait until none runs, stop the daemons, wait for them, remove the folder."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--user=root", check=False)
                deadline = time.time() + 20
                while time.time() < deadline and any(" COMPLETING" in j or " RUNNING" in j for j in self.jobs()):
                    time.sleep(0.2)
            except (subprocess.SubprocessError, OSError):  # a controller that does not answer: stopped all the same
                pass
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _reap_orphans()
        _subreaper(False)
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    """n distinct free ports (all bound at once, so that none is handed out twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _subreaper(on: bool) -> None:
    """PR_SET_CHILD_SUBREAPER: processes that lose their parent below this one become this one's children."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)


def _reap_orphans() -> None:
    """Wait for the SLURM processes that became this one's children (slurmstepd), and only for those."""
    deadline = time.time() + 10
    while time.time() < deadline:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                name, rest = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
            except (OSError, ValueError, IndexError):
                continue
            if int(rest.split()[1]) == os.getpid() and name.startswith(("slurm", "munge")):
                pid = int(stat.parent.name)
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        left.append(pid)
                except ChildProcessError:
                    pass
        if not left:
            return
        time.sleep(0.1)
