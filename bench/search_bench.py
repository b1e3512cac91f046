"""Search benchmark: the Optuna preset with and without pruning, and with one or two workers, in one run.

    make bench-search                  # or: python bench/search_bench.py [--trials 20]

(a) `python src/train.py -m hparams_search=lenet5_optuna`: its pruner, 1 worker with 2 threads;
(b) the same with `hydra/sweeper/pruner=none`;
(c) (b) with two workers on one study, started together, 1 thread each (`make search WORKERS=2
    ARGS="trainer.threads=1 hydra/sweeper/pruner=none"`): the same work as (b), so the speed-up is the workers';
(d) (a) with two workers: pruned trials that run side by side are compared with fewer finished ones;
(e) training throughput of the default config at 1 and 2 threads (median of 3, alternating): two 1-thread
    workers can beat one 2-thread worker by at most 2 x (1 thread) / (2 threads) on the training itself.
Each search runs on real Fashion-MNIST in its own study and folder. Writes bench/SEARCH.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def search(tmp: Path, name: str, trials: int, workers: int = 1, *extra: str) -> dict:
    """Run one search (N workers at once) and read back what it found."""
    args = [
        sys.executable,
        str(ROOT / "src/train.py"),
        "-m",
        "hparams_search=lenet5_optuna",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={trials}",
        f"paths.multirun_dir={tmp}",
        *extra,
    ]
    start = time.perf_counter()
    procs = []
    for i in range(workers):
        with open(tmp / f"{name}-{i}.log", "w") as log:  # the child keeps its own copy of the file
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            procs.append(subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env))
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"search {name} failed ({codes}): see {tmp}/{name}-*.log")
    runs = [json.loads(f.read_text()) for f in (tmp / name).glob("*/metrics.json")]
    done = [r for r in runs if r["status"] == "completed"]
    best = max(done, key=lambda r: r["objective"]["value"])
    searched = yaml.safe_load((tmp / name / "optimization_results.yaml").read_text())["best_params"]
    return {
        "wall_s": wall,
        "trials": len(runs),
        "pruned": sum(r["status"] == "pruned" for r in runs),
        "failed": sum(r["status"] not in ("completed", "pruned") for r in runs),
        "epochs": sum(r["epochs"] for r in runs),
        "best_val": best["objective"]["value"],
        "best_test": best["test/acc"],
        "best_trial": best["trial"],
        "best_params": searched,
    }


def throughput(threads: int, tmp: Path) -> float:
    """Training images/s of one epoch of the default config at `threads` threads (in a fresh process)."""
    code = f"""
import sys, torch; sys.path.insert(0, {str(ROOT / "bench")!r})
from bench import default_training
torch.set_num_threads({threads})
trainer = default_training(__import__('pathlib').Path({str(tmp)!r}))
trainer.max_epochs = 1
trainer.fit()
print(trainer.progress.images_per_s)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def fmt(s: float) -> str:
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    nopruner, one_thread = "hydra/sweeper/pruner=none", "trainer.threads=1"
    plan = (
        ("a", "pruned, 1 worker x 2 threads", 1, ()),
        ("b", "unpruned, 1 worker x 2 threads", 1, (nopruner,)),
        ("c", "unpruned, 2 workers x 1 thread", 2, (nopruner, one_thread)),
        ("d", "pruned, 2 workers x 1 thread", 2, (one_thread,)),
    )
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for key, label, workers, extra in plan:
            results[key] = r = search(tmp, key, args.trials, workers, *extra)
            print(
                f"({key}) {label}: {fmt(r['wall_s'])}, {r['pruned']} of {r['trials']} pruned, {r['epochs']} epochs, "
                f"best val/acc {r['best_val']:.4f} (trial {r['best_trial']}, test/acc {r['best_test']:.4f})",
                flush=True,
            )
        speeds = {1: [], 2: []}
        for rep in range(3):
            for threads in (1, 2):
                speeds[threads].append(throughput(threads, tmp / f"t{threads}-{rep}"))
    one, two = statistics.median(speeds[1]), statistics.median(speeds[2])
    bound = 2 * one / two
    a, b, c, w = (results[k] for k in "abcd")
    table = "\n".join(
        f"| ({key}) {label} | {fmt(r['wall_s'])} | {r['pruned']} | {r['epochs']} | {r['best_val']:.4f} | "
        f"{r['best_trial']} | {r['best_test']:.4f} |"
        for (key, label, _, _), r in zip(plan, (a, b, c, w))
    )
    report = f"""# Search benchmark

Measured by `make bench-search` (`python bench/search_bench.py --trials {args.trials}`) on real Fashion-MNIST,
{os.cpu_count()} cores, {time.strftime("%Y-%m-%d")}: the preset `hparams_search=lenet5_optuna` (TPE, seed 1234,
{args.trials} trials of 4 epochs at most), each search a fresh study, all in one run.

| search | wall time | pruned | epochs trained | best val/acc | best trial | its test/acc |
|---|---|---|---|---|---|---|
{table}

- Pruning (a against b): **{b["wall_s"] / a["wall_s"]:.2f}x faster** ({fmt(a["wall_s"])} against {fmt(b["wall_s"])}),
  best val/acc {a["best_val"] - b["best_val"]:+.4f} against the unpruned search.
- Two workers on one study (c against b, the same {b["epochs"]} epochs of work): **{b["wall_s"] / c["wall_s"]:.2f}x**.
  The bound on {os.cpu_count()} cores: training runs at {one:,.0f} images/s on 1 thread and {two:,.0f} on 2
  (medians of 3: {", ".join(f"{v:,.0f}" for v in speeds[1])} and {", ".join(f"{v:,.0f}" for v in speeds[2])}), so two
  1-thread workers can beat one 2-thread worker by at most **{bound:.2f}x** on the training itself.
- With pruning (d against a): **{a["wall_s"] / w["wall_s"]:.2f}x**, {w["epochs"]} epochs against {a["epochs"]}: trials
  that run side by side are compared with fewer finished trials, so fewer are pruned.
- Best parameters: (a) {a["best_params"]}; (b) {b["best_params"]}.
"""
    (ROOT / "bench" / "SEARCH.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
