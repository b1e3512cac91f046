"""What a run folder's metrics.json says, read back: every report (leaderboard, evaluation, confirmation, warm
starts) reads runs through here.

Each run and each trial writes metrics.json (record.py), pruned and failed ones too: its status, objective,
hyperparameters, test figures. Runs that differ only by a seed are one configuration (`configuration`). Kept free
of torch, Optuna and matplotlib: `src/compare.py` and the sweeper import it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cmp_to_key
from pathlib import Path
from typing import Any

from fashionlab.run_state import is_better
from fashionlab.status import Status

_RANK = {Status.COMPLETED: 0, Status.PRUNED: 1}  # everything else after these
REPEAT_KEYS = ("seed", "data.split_seed")  # what a repeat varies: runs that differ only here are one configuration


def load_runs(root: Path) -> list[dict]:
    """Every run's metrics.json under root; one that cannot be read (torn: a copy in progress, a full disk) is
    skipped with a one-line warning."""
    runs = []
    for f in sorted(root.rglob("metrics.json")):
        try:
            run = json.loads(f.read_text())
        except (OSError, ValueError):
            print(f"compare: skipped {f}: not valid JSON (a copy in progress, or a full disk?)", file=sys.stderr)
            continue
        run["dir"] = f.parent
        run["name"] = str(f.parent.relative_to(root)) if f.parent != root else f.parent.name
        runs.append(run)
    return runs


def read_status(run_dir: Path) -> str | None:
    """The status in a run's metrics.json; None if it has none or it cannot be read (torn, or not there)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text())["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def objective(run: dict) -> float:
    value = run["objective"]["value"]
    return float("nan") if value is None else value


def number(run: dict) -> int | None:
    """The trial number in a study, else the job number in a multirun, else None (a single run)."""
    return run.get("trial", run["job"].get("num"))


def seed_of(run: dict) -> object:
    return run.get("seed", run["hparams"].get("seed"))


def ranked(runs: list[dict]) -> list[dict]:
    """Completed runs best first, then pruned trials best first, then the rest."""
    mode = runs[0]["objective"]["mode"] if runs else "max"

    def compare(a: dict, b: dict) -> int:
        ra, rb = rank(a["status"]), rank(b["status"])
        if ra != rb:
            return ra - rb
        va, vb = objective(a), objective(b)
        return -1 if is_better(va, vb, mode) else 1 if is_better(vb, va, mode) else 0

    return sorted(runs, key=cmp_to_key(compare))


def rank(status: str) -> int:
    """Completed before pruned before the rest (failed, diverged, interrupted)."""
    return _RANK.get(Status(status), 2)


def configuration(hparams: dict) -> str:
    """What a run chose, less what a repeat varies: runs with the same text are repeats of one configuration."""
    return json.dumps({k: v for k, v in hparams.items() if k not in REPEAT_KEYS}, sort_keys=True, default=str)


def config_id(hparams: dict) -> str:
    """A short, stable name of the configuration (the HPARAMS column `repeat_group`)."""
    return hashlib.sha1(configuration(hparams).encode()).hexdigest()[:6]


def objectives_of(run: dict) -> list[dict]:
    """A multi-objective run's objectives ({metric, mode, value}); [] for a single objective."""
    return run["objective"].get("objectives") or []


def pareto_front(runs: list[dict]) -> list[dict]:
    """The completed runs that no other completed run dominates (as good in every objective, better in one)."""
    done = [r for r in runs if r["status"] == Status.COMPLETED and objectives_of(r)]

    def better_or_equal(a: dict, b: dict, i: int) -> bool:
        oa, ob = objectives_of(a)[i], objectives_of(b)[i]
        return oa["value"] >= ob["value"] if oa["mode"] == "max" else oa["value"] <= ob["value"]

    def dominates(a: dict, b: dict) -> bool:
        n = len(objectives_of(a))
        return all(better_or_equal(a, b, i) for i in range(n)) and not all(better_or_equal(b, a, i) for i in range(n))

    return [r for r in done if not any(dominates(o, r) for o in done if o is not r)]


def most_confused(confusion: dict[str, Any] | None) -> str | None:
    """'Shirt taken for T-shirt/top 112 times (11% of Shirt)': the largest count off the diagonal."""
    if not confusion or not confusion.get("counts"):
        return None
    counts, classes = confusion["counts"], confusion["classes"]
    n, i, j = max((counts[i][j], i, j) for i in range(len(classes)) for j in range(len(classes)) if i != j)
    if n == 0:
        return None
    return f"{classes[i]} taken for {classes[j]} {n} times ({n / sum(counts[i]):.0%} of {classes[i]})"


def differing_keys(runs: list[dict]) -> list[str]:
    """Hyperparameters that take more than one value among the runs, in the order runs list them (searched first)."""
    keys = list(dict.fromkeys(k for r in runs for k in r["hparams"]))
    return [k for k in keys if len({json.dumps(r["hparams"].get(k), sort_keys=True) for r in runs}) > 1]


def in_order(runs: list[dict]) -> list[dict]:
    """Trials in the order they were started (trial or job number), else by folder name; not a search's
    confirmation runs (they repeat a trial)."""
    own = [r for r in runs if r.get("confirms") is None]
    return sorted(own, key=lambda r: (number(r) is None, number(r) or 0, r["name"]))


def best_so_far(runs: list[dict], mode: str) -> list[float]:
    """After each run (in order), the best objective of the completed runs so far."""
    out, best = [], float("nan")
    for r in runs:
        if r["status"] == Status.COMPLETED and is_better(objective(r), best, mode):
            best = objective(r)
        out.append(best)
    return out
