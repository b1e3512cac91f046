# ruff: noqa: E501 - the report below is a Markdown template whose table rows are one line each
"""Search benchmark: where a search's time goes, this checkout against an earlier one, in one run.

    make bench-search                  # or: python bench/search_bench.py [--trials 20] [--baseline e29aa5b]
    make bench-search ARGS=--workers   # also the two-worker comparisons (about 10 minutes more)

The earlier checkout (`--baseline`, a commit: a git worktree of it is made in /tmp) is the code before the
trial loop and the overhead work: a batch loop, trials that start over. Real Fashion-MNIST, the preset
`hparams_search=lenet5_optuna` (TPE, seed 1234, successive halving, 4 epochs at most), each search a fresh study:

- overhead: the preset's search, basic launcher (1 trial at a time, 2 threads), baseline and this: wall time,
  the seconds before the first trial starts, and the overhead per trial: the span from the first trial's start
  to the last one's end, less the training steps (metrics.json: train_time_s), over the trials.
- loop: the same with `hydra/launcher=joblib hydra.launcher.n_jobs=2` (1 thread each): the baseline's batch
  loop against the trials in flight. Busy share = the trials' job times / (2 x that span).
- unpruned: this checkout with `hydra/sweeper/pruner=none` (what pruning saves).
- retry: a search of one 4-epoch trial whose worker is SIGKILLed after its second epoch; the next start's retry
  continues the dead trial's checkpoint: epochs it trains, against 4 when starting over.
- study size: bench/study_size.py (4 new trials in a fresh study and in one of 2,000 finished trials).
- 8 slots: a replay of the unpruned search's measured learning curves and epoch times on 8 slots (48 trials,
  successive halving as in the preset, decisions made in the order results arrive): batch against in flight.
Writes bench/SEARCH.md.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, baseline_checkout, python  # noqa: E402

JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
NOPRUNER = "hydra/sweeper/pruner=none"


def command(repo: Path, tmp: Path, name: str, trials: int, *extra: str, preset: str = "lenet5_optuna") -> list[str]:
    return [
        python(repo),
        str(repo / "src/train.py"),
        "-m",
        f"hparams_search={preset}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={trials}",
        f"paths.multirun_dir={tmp}",
        *extra,
    ]


def read(folder: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in folder.glob("*/metrics.json")]


def summary(folder: Path, start: float, wall: float, slots: int) -> dict:
    runs = read(folder)
    done = [r for r in runs if r["status"] == "completed"]
    best = max(done, key=lambda r: r["objective"]["value"])
    first, last = min(r["started_at"] for r in runs), max(r["ended_at"] for r in runs)
    span = last - first
    return {
        "wall_s": wall,
        "first_trial_s": first - start,
        "trials": len(runs),
        "pruned": sum(r["status"] == "pruned" for r in runs),
        "epochs": sum(r["epochs"] for r in runs),
        "overhead_s": (span - sum(r["train_time_s"] for r in runs) / slots) / len(runs) * slots,
        "busy": sum(r["ended_at"] - r["started_at"] for r in runs) / (slots * span),
        "best_val": best["objective"]["value"],
        "best_test": best["test/acc"],
        "best_trial": best["trial"],
        "best_params": yaml.safe_load((folder / "optimization_results.yaml").read_text()).get("best_params"),
    }


def search(
    repo: Path,
    tmp: Path,
    name: str,
    trials: int,
    *extra: str,
    workers: int = 1,
    slots: int = 1,
    preset: str = "lenet5_optuna",
) -> dict:
    """Run one search (N workers at once) and read back what it did."""
    start, procs = time.time(), []
    for i in range(workers):
        with open(tmp / f"{name}-{i}.log", "w") as log:  # the child keeps its own copy of the file
            procs.append(
                subprocess.Popen(
                    command(repo, tmp, name, trials, *extra, preset=preset),
                    cwd=repo,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
            )
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"search {name} failed ({codes}): see {tmp}/{name}-*.log")
    return summary(tmp / name, start, time.time() - start, slots * workers)


def retry(tmp: Path) -> dict:
    """SIGKILL a search's only trial after its second epoch; the next start's retry: what it trains."""
    import torch

    args = command(
        ROOT, tmp, "retry", 1, NOPRUNER, "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(tmp / "retry-0.log", "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    start, epoch = time.time(), 0
    while epoch < 2:
        time.sleep(0.5)
        for ckpt in (tmp / "retry").glob("*/checkpoints/last.pt"):
            try:
                epoch = torch.load(ckpt, weights_only=True)["progress"]["epoch"]
            except (OSError, RuntimeError, KeyError):  # being renamed into place
                pass
        if proc.poll() is not None:
            raise SystemExit(f"the trial ended before it could be killed: see {tmp}/retry-0.log")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.time() - start
    time.sleep(4)  # the grace period: the next start takes the trial for dead
    start = time.time()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, check=True).stdout
    (run,) = read(tmp / "retry")
    (log_file,) = (tmp / "retry").glob("*/train.log")
    resumed = next((line for line in log_file.read_text().splitlines() if "resuming" in line), "no resume")
    return {
        "killed_at_epoch": epoch,
        "killed_after_s": killed_after,
        "retry_epochs": run["epochs"] - epoch,
        "retry_wall_s": time.time() - start,
        "continues": "continues trial" in out,
        "resumed": resumed.split("] ")[-1],
        "epochs": run["epochs"],
    }


def confirm(tmp: Path, name: str, top: int = 3, seeds: int = 3) -> dict:
    """src/confirm.py on a finished study: its top trials with new seeds; what the confirmation says and costs."""
    from fashionlab.leaderboard.groups import confirmed, verdict
    from fashionlab.runs import load_runs

    start = time.time()
    subprocess.run(
        [sys.executable, str(ROOT / "src/confirm.py"), str(tmp / name), "--top", str(top), "--seeds", str(seeds)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    wall = time.time() - start
    runs = [r for r in load_runs(tmp / name) if r.get("trial") is not None or r.get("confirms") is not None]
    groups = confirmed(runs)
    searched = sorted(groups, key=lambda g: -g.first["objective"]["value"])  # the search's own order
    return {
        "wall_s": wall,
        "trials": [
            {
                "trial": g.first["trial"],
                "search_val": g.first["objective"]["value"],
                "search_test": g.first.get("test/acc"),
                "mean": g.mean,
                "sd": g.sd,
                "n": len(g.done),
                "test_mean": statistics.fmean(g.test()),
                "test_sd": statistics.stdev(g.test()) if len(g.test()) > 1 else float("nan"),
            }
            for g in groups
        ],
        "held": [g.first["trial"] for g in groups] == [g.first["trial"] for g in searched],
        "verdict": verdict(groups),
    }


def curves(tmp: Path, name: str) -> list[tuple[list[float], float]]:
    """Each trial's reported values per epoch, and its seconds per epoch, from an unpruned search's study."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(tmp / name / "optuna.journal")))
    )
    runs = {r["trial"]: r for r in read(tmp / name)}
    out = []
    for t in study.trials:
        values = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
        r = runs[t.number]
        out.append((values, (r["ended_at"] - r["started_at"]) / r["epochs"]))
    return out


def replay(measured: list[tuple[list[float], float]], slots: int, in_flight: bool, trials: int = 48) -> dict:
    """The search on `slots` slots, replayed from measured curves: each trial's epochs take its measured time,
    the pruner (successive halving, min_resource 1, reduction factor 4) judges each epoch's value when it
    arrives. Batch: `slots` trials start together and the next batch waits for the slowest; in flight: a slot
    that frees starts the next trial at once."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    )
    queue = [measured[i % len(measured)] for i in range(trials)]
    events: list = []  # (time, sequence, trial, curve, epoch, started)
    busy, clock, batch_end, started, epochs, seq = 0.0, 0.0, 0.0, 0, 0, 0

    def start(at: float) -> None:
        nonlocal started, seq
        curve = queue[started]
        started += 1
        seq += 1
        heapq.heappush(events, (at + curve[1], seq, study.ask(), curve, 1, at))

    for _ in range(min(slots, trials)):
        start(0.0)
    running = min(slots, trials)
    while events:
        clock, _, trial, curve, epoch, began = heapq.heappop(events)
        epochs += 1
        trial.report(curve[0][epoch - 1], epoch)
        if epoch < len(curve[0]) and not trial.should_prune():
            seq += 1
            heapq.heappush(events, (clock + curve[1], seq, trial, curve, epoch + 1, began))
            continue
        study.tell(
            trial,
            curve[0][epoch - 1] if epoch == len(curve[0]) else None,
            state=optuna.trial.TrialState.COMPLETE if epoch == len(curve[0]) else optuna.trial.TrialState.PRUNED,
        )
        busy += clock - began
        running -= 1
        batch_end = max(batch_end, clock)
        if in_flight and started < trials:
            start(clock)
            running += 1
        elif not in_flight and running == 0:
            for _ in range(min(slots, trials - started)):
                start(batch_end)
                running += 1
    return {"busy": busy / (slots * clock), "makespan": clock, "epochs": epochs, "best": study.best_value}


def throughput(threads: int, tmp: Path) -> float:
    """Training images/s of one epoch of the default config at `threads` threads (in a fresh process)."""
    code = f"""
import sys, torch; sys.path.insert(0, {str(ROOT / "bench")!r})
from bench import default_training
torch.set_num_threads({threads})
trainer = default_training(__import__('pathlib').Path({str(tmp)!r}))
trainer.max_epochs = 1
trainer.fit()
print(trainer.state.images_per_s)
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


def confirm_rows(c: dict) -> str:
    return "\n".join(
        f"| {t['trial']} | {t['search_val']:.4f} | {t['search_test']:.4f} | {t['mean']:.4f} +/- {t['sd']:.4f} ({t['n']}) | "
        f"{t['test_mean']:.4f} +/- {t['test_sd']:.4f} |"
        for t in c["trials"]
    )


def pareto_rows(p: dict) -> str:
    def params(x: dict) -> str:
        q = x["params"]
        return (
            f"{q['optimizer']}, {q['optimizer.lr']:.2g}, {q['data.batch_size']}, {q['model.conv2_channels']}, "
            f"{q['model.fc1_features']}"
        )

    return "\n".join(
        f"| {x['trial']} | {x['values'][0]:.4f} | {int(x['values'][1]):,} | {params(x)} |" for x in p["front"]
    )


def fmt(s: float) -> str:
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def row(label: str, r: dict, busy: bool = False) -> str:
    share = f" {r['busy']:.0%} |" if busy else ""
    return (
        f"| {label} | {fmt(r['wall_s'])} |{share} {r['first_trial_s']:.1f} s | {r['overhead_s']:.2f} s | {r['pruned']} | "
        f"{r['epochs']} | {r['best_val']:.4f} ({r['best_trial']}) | {r['best_test']:.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--baseline", default="e29aa5b", help="the earlier commit to compare with")
    parser.add_argument("--workers", action="store_true", help="also two workers on one study (10 minutes more)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the searches' folders here (default: deleted)")
    args = parser.parse_args()
    import study_size  # the 2,000-trial part: its own script too (bench/study_size.py)

    base = baseline_checkout(args.baseline)
    r: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) if args.keep is None else args.keep.resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        plan = [
            ("overhead_base", base, (), 1),
            ("overhead", ROOT, (), 1),
            ("loop_base", base, JOBLIB, 2),
            ("loop", ROOT, JOBLIB, 2),
            ("unpruned", ROOT, (NOPRUNER,), 1),
        ]
        for name, repo, extra, slots in plan:
            r[name] = search(repo, tmp, name, args.trials, *extra, slots=slots)
            print(name, {k: v for k, v in r[name].items() if k != "best_params"}, flush=True)
        r["confirm"] = confirm(tmp, "overhead")
        print("confirm", r["confirm"], flush=True)
        start = time.time()
        subprocess.run(
            command(ROOT, tmp, "pareto", args.trials, preset="lenet5_pareto"), cwd=ROOT, check=True, capture_output=True
        )
        front = yaml.safe_load((tmp / "pareto" / "optimization_results.yaml").read_text())
        pareto_runs = read(tmp / "pareto")
        r["pareto"] = {
            "wall_s": time.time() - start,
            "pruned": sum(x["status"] == "pruned" for x in pareto_runs),
            "epochs": sum(x["epochs"] for x in pareto_runs),
            "front": [{"trial": f["trial"], "values": f["values"], "params": f["params"]} for f in front["solutions"]],
        }
        print("pareto", r["pareto"], flush=True)
        r["retry"] = retry(tmp)
        print("retry", r["retry"], flush=True)
        measured = curves(tmp, "unpruned")
        r["replay"] = {mode: replay(measured, 8, mode == "in flight") for mode in ("batch", "in flight")}
        r["replay2"] = {mode: replay(measured, 2, mode == "in flight", 20) for mode in ("batch", "in flight")}
        print("replay", r["replay"], r["replay2"], flush=True)
        with tempfile.TemporaryDirectory() as s:
            fresh, big = Path(s) / "fresh", Path(s) / "big"
            big.mkdir()
            records = study_size.write_study(big / "optuna.journal", "lenet5_optuna", 2000)
            mb = (big / "optuna.journal").stat().st_size / 1e6
            (Path(s) / "big_base").mkdir()
            (Path(s) / "big_base" / "optuna.journal").write_bytes((big / "optuna.journal").read_bytes())
            r["size"] = {
                "fresh": study_size.grow(fresh, 4),
                "big": study_size.grow(big, 2004),
                "fresh_base": study_size.grow(Path(s) / "fresh_base", 4, base),
                "big_base": study_size.grow(Path(s) / "big_base", 2004, base),
                "records": records,
                "mb": mb,
            }
        print("size", r["size"], flush=True)
        if args.workers:
            one_thread = "trainer.threads=1"
            r["c"] = search(ROOT, tmp, "c", args.trials, NOPRUNER, one_thread, workers=2)
            r["d"] = search(ROOT, tmp, "d", args.trials, one_thread, workers=2)
            speeds: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(3):
                for threads in (1, 2):
                    speeds[threads].append(throughput(threads, tmp / f"t{threads}-{rep}"))
            r["speeds"] = speeds
    (ROOT / "bench" / "search_results.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    write_report(r, args)


def write_report(r: dict, args: argparse.Namespace) -> None:
    ob, o, lb, lp, u, k, z = (
        r[n] for n in ("overhead_base", "overhead", "loop_base", "loop", "unpruned", "retry", "size")
    )
    rp, rp2 = r["replay"], r["replay2"]
    ratio = lambda a, b: a["overhead_s"] / b["overhead_s"]  # noqa: E731
    workers = ""
    if "c" in r:
        one, two = statistics.median(r["speeds"][1]), statistics.median(r["speeds"][2])
        workers = f"""
## Two workers on one study (`--workers`)

| search | wall time | pruned | epochs | best val/acc (trial) | its test/acc |
|---|---|---|---|---|---|
| unpruned, 2 workers x 1 thread | {fmt(r["c"]["wall_s"])} | {r["c"]["pruned"]} | {r["c"]["epochs"]} | {r["c"]["best_val"]:.4f} ({r["c"]["best_trial"]}) | {r["c"]["best_test"]:.4f} |
| pruned, 2 workers x 1 thread | {fmt(r["d"]["wall_s"])} | {r["d"]["pruned"]} | {r["d"]["epochs"]} | {r["d"]["best_val"]:.4f} ({r["d"]["best_trial"]}) | {r["d"]["best_test"]:.4f} |

Against 1 worker x 2 threads unpruned: **{u["wall_s"] / r["c"]["wall_s"]:.2f}x**; the bound on the training itself is
2 x {one:,.0f} / {two:,.0f} images/s (1 and 2 threads, medians of 3) = **{2 * one / two:.2f}x**.
"""
    report = f"""# Search benchmark

Measured by `make bench-search` (`python bench/search_bench.py --trials {args.trials} --baseline {args.baseline}`) on real
Fashion-MNIST, {os.cpu_count()} cores, {time.strftime("%Y-%m-%d")}, all in one run. The preset `hparams_search=lenet5_optuna`
(TPE, seed 1234, successive halving, {args.trials} trials of 4 epochs at most), each search a fresh study. "Before" is
commit {args.baseline} (a batch loop; every trial paid its set-up), "now" this checkout.

## One worker: the overhead per trial

| search | wall time | first trial after | overhead per trial | pruned | epochs | best val/acc (trial) | its test/acc |
|---|---|---|---|---|---|---|---|
{row("before, basic launcher", ob)}
{row("now, basic launcher", o)}
{row("now, no pruning", u)}

Overhead per trial: from the first trial's start to the last one's end, outside the training steps, over the trials
(each trial's metrics.json: started_at, ended_at, train_time_s). Now {o["overhead_s"]:.2f} s against {ob["overhead_s"]:.2f} s
({ratio(o, ob):.2f}x). Before, started_at was taken after the job had built its components, so "before" leaves out
that part of its first trial. Pruning: {u["wall_s"] / o["wall_s"]:.2f}x faster than no pruning, best val/acc
{o["best_val"] - u["best_val"]:+.4f}.

## Two slots (`hydra/launcher=joblib hydra.launcher.n_jobs=2`): batch loop against trials in flight

| search | wall time | slot busy share | first trial after | overhead per trial | pruned | epochs | best val/acc (trial) | its test/acc |
|---|---|---|---|---|---|---|---|---|
{row("before: batches of 2", lb, busy=True)}
{row("now: in flight", lp, busy=True)}

Busy share: the trials' job times / (2 x the span from the first trial's start to the last one's end). Wall time
now {lb["wall_s"] / lp["wall_s"]:.2f}x faster. The epochs and the best trial differ: the sampler and the pruner see results in
another order.

## Eight slots: a replay of measured learning curves

The unpruned search's {u["trials"]} trials (their val/acc per epoch and seconds per epoch) replayed on 8 slots, 48 trials,
successive halving judging each epoch's value as it arrives:

| 8 slots, 48 trials | busy share | makespan | epochs | best |
|---|---|---|---|---|
| batch (every launcher before) | {rp["batch"]["busy"]:.0%} | {rp["batch"]["makespan"]:.0f} s | {rp["batch"]["epochs"]} | {rp["batch"]["best"]:.4f} |
| in flight (now) | {rp["in flight"]["busy"]:.0%} | {rp["in flight"]["makespan"]:.0f} s | {rp["in flight"]["epochs"]} | {rp["in flight"]["best"]:.4f} |

The same replay on 2 slots, 20 trials: batch {rp2["batch"]["busy"]:.0%}, in flight {rp2["in flight"]["busy"]:.0%} (the real joblib search above:
{lb["busy"]:.0%} and {lp["busy"]:.0%}).

## A worker killed mid-trial

A 4-epoch trial SIGKILLed (its whole worker) after epoch {k["killed_at_epoch"]} ({k["killed_after_s"]:.0f} s in); the next start took it for
dead, queued it again, and the retry {"continued its checkpoint" if k["continues"] else "DID NOT continue"} ("{k["resumed"]}"): it trained
**{k["retry_epochs"]} epochs** ({k["retry_wall_s"]:.0f} s with the worker's start) instead of 4, and ended with {k["epochs"]} epochs.

## A big study

4 new 1-epoch trials on synthetic data, basic launcher, in a fresh study and in a journal of 2,000 finished trials
({z["records"]:,} records with heartbeats, {z["mb"]:.1f} MB), written as the sweeper writes one (bench/study_size.py):

| study | before: wall | overhead per trial | now: wall | first trial after | overhead per trial |
|---|---|---|---|---|---|
| fresh | {z["fresh_base"]["wall_s"]:.1f} s | {z["fresh_base"]["overhead_s"]:.2f} s | {z["fresh"]["wall_s"]:.1f} s | {z["fresh"]["first_trial_s"]:.1f} s | {z["fresh"]["overhead_s"]:.2f} s |
| 2,000 trials | {z["big_base"]["wall_s"]:.1f} s | {z["big_base"]["overhead_s"]:.2f} s | {z["big"]["wall_s"]:.1f} s | {z["big"]["first_trial_s"]:.1f} s | {z["big"]["overhead_s"]:.2f} s |

Overhead per new trial, 2,000 against 0: before {ratio(z["big_base"], z["fresh_base"]):.2f}x, now **{ratio(z["big"], z["fresh"]):.2f}x**
(the journal is read once per process, then only what was added). The first trial waits for that one read.
{workers}
Best parameters (now, basic launcher): {o["best_params"]}.

## Confirming the winners

`python src/confirm.py` on the "now, basic launcher" study: its top 3 trials, each with 3 new seeds (and as many
validation splits), {fmt(r["confirm"]["wall_s"])} ({r["confirm"]["wall_s"] / o["wall_s"]:.2f}x the search's own wall time):

| trial | the search's val/acc | its test/acc | confirmed val/acc, mean +/- sd (n) | test/acc, mean +/- sd |
|---|---|---|---|---|
{confirm_rows(r["confirm"])}

Ranked by their mean, the confirmed trials {"keep" if r["confirm"]["held"] else "do not keep"} the search's order. {r["confirm"]["verdict"] or ""}

## Two objectives

`hparams_search=lenet5_pareto` (val/acc against model/params, {args.trials} trials): {fmt(r["pareto"]["wall_s"])}, {r["pareto"]["pruned"]} pruned, {r["pareto"]["epochs"]} epochs; its
Pareto front:

| trial | val/acc | parameters | optimizer, lr, batch size, conv2, fc1 |
|---|---|---|---|
{pareto_rows(r["pareto"])}
"""
    (ROOT / "bench" / "SEARCH.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
