"""Compare runs: a leaderboard of every run under a folder, a plot, and the sweep-level TensorBoard run.

Reads each run's metrics.json (written by every run and every trial, failed ones included).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from hydra.experimental.callback import Callback

SWEEP_RUN = "_sweep"  # the sweep-level TensorBoard run, beside the trials' runs


def load_runs(root: Path) -> list[dict]:
    runs = []
    for f in sorted(root.rglob("metrics.json")):
        run = json.loads(f.read_text())
        run["dir"] = f.parent
        run["name"] = str(f.parent.relative_to(root)) if f.parent != root else f.parent.name
        runs.append(run)
    return runs


def objective(run: dict) -> float:
    value = run["objective"]["value"]
    return float("nan") if value is None else value


def ranked(runs: list[dict]) -> list[dict]:
    """Best first by the objective; failed runs last."""
    sign = -1 if runs and runs[0]["objective"]["mode"] == "max" else 1
    failed = [r for r in runs if math.isnan(objective(r))]
    return sorted((r for r in runs if r not in failed), key=lambda r: sign * objective(r)) + failed


def differing_keys(runs: list[dict]) -> list[str]:
    """Hyperparameters that take more than one value among the runs that have them."""
    keys = sorted({k for r in runs for k in r["hparams"]})
    return [k for k in keys if len({json.dumps(r["hparams"][k], sort_keys=True) for r in runs if k in r["hparams"]}) > 1]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def leaderboard(runs: list[dict]) -> str:
    keys = differing_keys(runs)
    metric = runs[0]["objective"]["metric"]
    header = ["#", "run", *keys, f"best {metric}", "test/acc", "epochs", "time_s", "status"]
    rows = []
    for i, r in enumerate(ranked(runs), 1):
        name = r["name"].split("_")[0] if r["job"].get("num") is not None else r["name"]
        rows.append([str(i), name, *[_fmt(r["hparams"].get(k)) for k in keys], _fmt(r["objective"]["value"]),
                     _fmt(r.get("test/acc")), str(r["epochs"]), f"{r['wall_time_s']:.1f}", r["status"]])
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def most_important(runs: list[dict]) -> str | None:
    """The hyperparameter that explains most of the objective's variance (adjusted correlation ratio).

    Values are grouped (numbers into up to 4 quantile bins), so a setting that is bad both too high and too
    low (a learning rate) counts as much as a monotone one.
    """
    ok = [r for r in runs if not math.isnan(objective(r))]
    if len(ok) < 4:
        return None
    scores = {k: _explained([r["hparams"].get(k) for r in ok], [objective(r) for r in ok])
              for k in differing_keys(ok)}
    return max(scores, key=scores.get) if scores else None


def _explained(values: list, y: list[float]) -> float:
    """Epsilon squared: (between-group - (k-1) x within-group mean square) / (total + within mean square)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) > 4:
        edges = sorted(values)
        cuts = [edges[len(edges) * q // 4] for q in (1, 2, 3)]
        keys = [sum(v >= c for c in cuts) for v in values]
    else:
        keys = [json.dumps(v, sort_keys=True) for v in values]
    groups: dict = {}
    for key, v in zip(keys, y):
        groups.setdefault(key, []).append(v)
    mean = sum(y) / len(y)
    total = sum((v - mean) ** 2 for v in y)
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
    k, n = len(groups), len(y)
    if k < 2 or n <= k or total == 0:
        return 0.0
    within_ms = (total - between) / (n - k)
    return (between - (k - 1) * within_ms) / (total + within_ms)


def in_order(runs: list[dict]) -> list[dict]:
    """Trials in the order they were launched (job number), else by folder name."""
    return sorted(runs, key=lambda r: (r["job"].get("num") is None, r["job"].get("num") or 0, r["name"]))


def best_so_far(values: list[float], mode: str) -> list[float]:
    out, best = [], float("nan")
    for v in values:
        if not math.isnan(v) and (math.isnan(best) or (v > best if mode == "max" else v < best)):
            best = v
        out.append(best)
    return out


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, mode = runs[0]["objective"]["metric"], runs[0]["objective"]["mode"]
    ordered = in_order(runs)
    values = [objective(r) for r in ordered]
    key = most_important(runs)
    fig, axes = plt.subplots(1, 2 if key else 1, figsize=(11 if key else 6, 4), squeeze=False)
    ax = axes[0][0]
    xs = list(range(len(values)))
    ax.scatter([x for x, v in zip(xs, values) if not math.isnan(v)], [v for v in values if not math.isnan(v)],
               label="trial")
    failed = [x for x, v in zip(xs, values) if math.isnan(v)]
    if failed:
        ax.scatter(failed, [min((v for v in values if not math.isnan(v)), default=0)] * len(failed), marker="x",
                   color="red", label="failed")
    ax.step(xs, best_so_far(values, mode), where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} per trial")
    ax.legend()
    if key:
        ok = [r for r in runs if not math.isnan(objective(r))]
        ax = axes[0][1]
        xs = [r["hparams"][key] for r in ok]
        ax.scatter(xs, [objective(r) for r in ok])
        if all(isinstance(x, (int, float)) and x > 0 for x in xs) and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key} (explains most of its variance)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sweep_run(sweep_dir: Path, runs: list[dict]) -> None:
    """The sweep-level TensorBoard run: each trial's objective and the best so far, by trial number."""
    from torch.utils.tensorboard import SummaryWriter

    ordered = [r for r in in_order(runs) if r["job"].get("num") is not None]
    if not ordered:
        return
    metric, mode = ordered[0]["objective"]["metric"], ordered[0]["objective"]["mode"]
    values = [objective(r) for r in ordered]
    with SummaryWriter(str(sweep_dir / SWEEP_RUN)) as w:
        for r, v, best in zip(ordered, values, best_so_far(values, mode)):
            if not math.isnan(v):
                w.add_scalar(f"sweep/{metric}", v, r["job"]["num"])
            if not math.isnan(best):
                w.add_scalar(f"sweep/best_{metric}", best, r["job"]["num"])


class SweepSummary(Callback):
    """At the end of a multirun: the sweep-level TensorBoard run, leaderboard.txt and comparison.png."""

    def on_multirun_end(self, config, **kwargs) -> None:
        import logging

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = [r for r in load_runs(sweep_dir) if r["job"].get("num") is not None]
        if not runs:
            return
        write_sweep_run(sweep_dir, runs)
        table = leaderboard(runs)
        (sweep_dir / "leaderboard.txt").write_text(table + "\n")
        plot(runs, sweep_dir / "comparison.png")
        logging.getLogger(__name__).info(f"leaderboard ({sweep_dir}):\n{table}")
