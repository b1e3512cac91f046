"""The leaderboard as text: the configurations (where runs repeat one), then every run best first, the best run's
per-class line, and which parameters matter.

Ranked: completed runs by their objective, then pruned trials (stopped early, so not comparable with finished
ones), then runs that failed. A multi-objective search's runs show every objective, the Pareto front first.
"""

from __future__ import annotations

import statistics
from typing import Any

from fashionlab.leaderboard.groups import fmt, grouped, verdict
from fashionlab.leaderboard.importance import Found, importance, importance_line
from fashionlab.runs import (
    REPEAT_KEYS,
    differing_keys,
    most_confused,
    number,
    objectives_of,
    pareto_front,
    ranked,
    seed_of,
)
from fashionlab.status import Status

COMPUTE: Any = object()  # leaderboard() and plot() compute the importance themselves unless given it


def leaderboard(runs: list[dict], found: Found | None = COMPUTE) -> str:
    """The configurations (where there are repeats), then every run but a search's confirmation runs. `found`:
    the runs' importance(), if the caller has it (it fits a random forest: computed once for table and plot)."""
    found = importance(runs) if found is COMPUTE else found
    grouped_table = configurations(runs)
    own = [r for r in runs if r.get("confirms") is None] or runs
    keys = differing_keys(own)
    metric = runs[0]["objective"]["metric"]
    others = [o["metric"] for o in next((objectives_of(r) for r in own if objectives_of(r)), [])][1:]
    front = pareto_front(own)
    order = ranked(own)
    if others:
        order = [r for r in order if any(r is f for f in front)] + [r for r in order if all(r is not f for f in front)]
    header = ["#", "run", *keys, f"best {metric}", *others, "test/acc", "epochs", "time_s", "status"]
    header = header[:1] + (["front"] if others else []) + header[1:]
    rows = []
    for i, r in enumerate(order, 1):
        name = str(number(r)) if number(r) is not None else r["name"]
        epochs = f"{r['epochs']}/{r['max_epochs']}" if r.get("max_epochs") else str(r["epochs"])
        values = {o["metric"]: o["value"] for o in objectives_of(r)}
        rows.append(
            [
                str(i),
                *(["*" if any(r is f for f in front) else ""] if others else []),
                name,
                *[fmt(r["hparams"].get(k)) for k in keys],
                fmt(r["objective"]["value"]),
                *[fmt(values.get(m, r.get(m))) for m in others],
                fmt(r.get("test/acc")),
                epochs,
                f"{r['wall_time_s']:.1f}",
                r["status"],
            ]
        )
    notes = [f"test/acc: the test split, once, with the weights of each run's best epoch (chosen by {metric})."]
    if others:
        notes.append(f"front (*): the Pareto front of {', '.join([metric, *others])}: no other run is as good in all.")
    table = "\n".join([text_table(header, rows), "", *notes, *best_run_classes(own), *importance_line(found)])
    return table if grouped_table is None else f"{grouped_table}\n\nRuns:\n{table}"


def configurations(runs: list[dict]) -> str | None:
    """The table of configurations, if any has repeats: n, mean +/- sd, 95% interval, test/acc, seeds."""
    groups = grouped(runs)
    if all(len(g.runs) < 2 for g in groups):
        return None
    keys = [k for k in differing_keys([g.first for g in groups]) if k not in REPEAT_KEYS]
    metric = runs[0]["objective"]["metric"]
    header = [
        "#",
        "run",
        *keys,
        "n",
        f"{metric} mean +/- sd",
        "95% interval",
        "test/acc mean +/- sd",
        "seeds",
        "status",
    ]
    rows = []
    for i, g in enumerate(groups, 1):
        test = g.test()
        name = g.first.get("trial", number(g.first))
        rows.append(
            [
                str(i),
                str(name) if name is not None else g.first["name"],
                *[fmt(g.first["hparams"].get(k)) for k in keys],
                str(len(g.done)),
                f"{g.mean:.4f} +/- {g.sd:.4f}" if len(g.done) > 1 else fmt(g.mean),
                f"{g.mean - g.interval():.4f} .. {g.mean + g.interval():.4f}" if len(g.done) > 1 else "-",
                f"{statistics.fmean(test):.4f} +/- {statistics.stdev(test):.4f}"
                if len(test) > 1
                else fmt(test[0] if test else None),
                ",".join(str(seed) for seed in sorted((seed_of(r) for r in g.runs), key=_number_first)),
                g.status,
            ]
        )
    said = verdict(groups)
    note = (
        f"Configurations: runs that differ only by {' or '.join(REPEAT_KEYS)} are one; n counts the completed runs; "
        f"sd is the standard deviation over them, the interval the mean's 95% t-interval."
    )
    return "\n".join([text_table(header, rows), "", note, *([said] if said else [])])


def best_run_classes(runs: list[dict]) -> list[str]:
    """The best completed run's test accuracy per class, and the two classes it confuses most."""
    best = next((r for r in ranked(runs) if r["status"] == Status.COMPLETED and r.get("test/confusion")), None)
    if best is None:
        return []
    confusion = best["test/confusion"]
    per_class = [
        f"{name} {row[i] / max(1, sum(row)):.3f}"
        for i, (name, row) in enumerate(zip(confusion["classes"], confusion["counts"]))
    ]
    name = number(best) if number(best) is not None else best["name"]
    lines = [f"best run {name}, test/acc per class (epoch {best.get('tested_epoch')}): " + ", ".join(per_class)]
    pair = most_confused(confusion)
    return lines + ([f"  most confused: {pair}"] if pair else [])


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _number_first(value: object) -> tuple:
    return (not isinstance(value, (int, float)), value if isinstance(value, (int, float)) else 0, str(value))
