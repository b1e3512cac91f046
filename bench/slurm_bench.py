# ruff: noqa: E501 - the report below is a Markdown template whose table rows are one line each
"""What SLURM costs a search, measured on a single-node test cluster (tests/slurm_cluster.py; root, Debian's
slurmctld, slurmd, slurm-client and munge); writes bench/SLURM.md.

    make bench-slurm          # or: python bench/slurm_bench.py

- a pruned 8-trial search (the preset on synthetic data, 2 epochs), trials as SLURM jobs 2 at a time: wall time,
  and from each trial's submission (its start in the study) to its job's start (metrics.json started_at);
- a preempted trial (scancel --signal=USR2 at its first checkpoint): the step it stopped at and the step it went on
  from (the batches trained again), and how long the requeued job took to train again;
- a cancelled trial (scancel): how long until the study records it lost.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from slurm_cluster import Cluster, missing  # noqa: E402

SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.array_parallelism=2",
]
LONG = ["hydra/sweeper/pruner=none", "data.num_train=6000", "trainer.max_epochs=12", "logging.embedding=false"]


def search(cluster: Cluster, tmp: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "src/train.py"),
            "-m",
            "experiment=smoke",
            "hparams_search=lenet5_optuna",
            f"paths.multirun_dir={tmp}",
            *SLURM,
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**cluster.env, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
    )


def study(tmp: Path) -> list:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = JournalStorage(JournalFileBackend(str(tmp / "lenet5_optuna" / "optuna.journal")))
    return optuna.load_study(study_name="lenet5_optuna", storage=storage).trials


def first_checkpoint(tmp: Path) -> tuple[str, Path]:
    while True:
        found = list(tmp.glob("lenet5_optuna/0*/checkpoints/last.pt"))
        if found:
            run = found[0].parents[1]
            return json.loads((run / "run_info.json").read_text())["slurm_job"], run
        time.sleep(0.1)


def clock(line: str) -> float:
    """The seconds of the day of a run log line ([HH:MM:SS])."""
    h, m, s = map(int, line[1:9].split(":"))
    return 3600 * h + 60 * m + s


def main() -> None:
    why = missing()
    if why:
        raise SystemExit(f"slurm_bench: no test cluster here: {why}")
    r: dict = {}
    with Cluster() as cluster, tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "search"
        start = time.time()
        proc = search(cluster, tmp, "hydra.sweeper.n_trials=8", "trainer.max_epochs=2", "data.num_train=1500")
        out, _ = proc.communicate(timeout=600)
        r["search_wall_s"] = time.time() - start
        trials = study(tmp)
        runs = {
            json.loads(p.read_text())["trial"]: json.loads(p.read_text())
            for p in tmp.glob("lenet5_optuna/0*/metrics.json")
        }
        waits = [runs[t.number]["started_at"] - t.datetime_start.timestamp() for t in trials]
        r["submit_to_start_s"] = {"median": statistics.median(waits), "min": min(waits), "max": max(waits)}
        r["trials"] = {"n": len(trials), "pruned": sum(t.state.name == "PRUNED" for t in trials)}

        tmp = Path(d) / "preempt"
        proc = search(cluster, tmp, "hydra.sweeper.n_trials=1", *LONG)
        job, run = first_checkpoint(tmp)
        signalled = time.time()
        cluster.run("scancel", "--signal=USR2", job)
        out, _ = proc.communicate(timeout=600)
        log = (run / "train.log").read_text().splitlines()
        stopped = next(
            line for line in log if "SLURM's USR2" in line
        )  # "..., interrupted by signal 12 at step S (...)"
        resumed = next(line for line in log if "resuming " in line)
        step_at_stop = int(re.search(r"at step (\d+)", stopped).group(1))
        step_resumed = int(re.search(r"step (\d+)", resumed).group(1))
        first_epoch_after = next(line for line in log[log.index(resumed) :] if "][INFO] epoch " in line)
        r["preempted"] = {
            "requeue_to_training_s": clock(first_epoch_after) - clock(stopped),
            "requeue_to_resume_s": clock(resumed) - clock(stopped),
            "signal_to_done_s": time.time() - signalled,
            "step_at_stop": step_at_stop,
            "step_resumed": step_resumed,
            "epochs_logged": [int(line.split("epoch ")[1].split("/")[0]) for line in log if "][INFO] epoch " in line],
        }

        tmp = Path(d) / "cancel"
        proc = search(cluster, tmp, "hydra.sweeper.n_trials=1", *LONG)
        job, run = first_checkpoint(tmp)
        fault = time.time()
        cluster.run("scancel", job)
        out, _ = proc.communicate(timeout=600)
        lost = next(t for t in study(tmp) if t.state.name == "FAIL")
        r["cancel_to_lost_s"] = lost.datetime_complete.timestamp() - fault
    (ROOT / "bench" / "slurm_results.json").write_text(json.dumps(r, indent=2) + "\n")
    p = r["preempted"]
    once = sorted(set(p["epochs_logged"])) == p["epochs_logged"]
    text = f"""# SLURM: one run of `make bench-slurm`

Measured on {datetime.now():%Y-%m-%d} on {platform.machine()} ({os.cpu_count()} cores), a single-node test cluster (slurm-wlm 22.05,
no accounting, `cred_expire=10`, a scheduler pass every 2 s: tests/slurm_cluster.py), `python bench/slurm_bench.py`.

| what | measured |
|---|---|
| the preset's pruned search, 8 trials of 2 epochs on synthetic data, 2 jobs at a time | {r["search_wall_s"]:.0f} s, {r["trials"]["pruned"]} pruned |
| from a trial's submission to its job's start (median, min - max over the 8) | {r["submit_to_start_s"]["median"]:.1f} s ({r["submit_to_start_s"]["min"]:.1f} - {r["submit_to_start_s"]["max"]:.1f} s) |
| a preempted trial (USR2 at its first checkpoint): the step it stopped at, the step it went on from | {p["step_at_stop"]}, {p["step_resumed"]}: {"no batch" if p["step_at_stop"] == p["step_resumed"] else f"{(p['step_at_stop'] or 0) - p['step_resumed']} batches"} trained again |
| from its stop to its requeued job's resuming, and to its next epoch | {p["requeue_to_resume_s"]:.0f} s, {p["requeue_to_training_s"]:.0f} s |
| its epochs, as its log lists them | {"each once" if once else "SOME TWICE"}: {p["epochs_logged"][0]} .. {p["epochs_logged"][-1]} |
| a cancelled trial (scancel): until the study records it lost | {r["cancel_to_lost_s"]:.0f} s |

The requeued job's wait is SLURM's: a requeued job may start again only after `cred_expire` + 1 s (120 s by
default; 10 here), then at the next scheduler pass. On a real cluster add the queue's own wait.
"""
    (ROOT / "bench" / "SLURM.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
