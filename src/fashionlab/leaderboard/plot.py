"""comparison.png: the objective per trial with the best so far (pruned and failed trials marked, confirmed
trials as error bars), against the parameter that matters most, the importance of each, and a multi-objective
search's Pareto front.
"""

from __future__ import annotations

import math
from pathlib import Path

from fashionlab.files import commit
from fashionlab.leaderboard.groups import confirmed
from fashionlab.leaderboard.importance import Found, importance
from fashionlab.leaderboard.table import COMPUTE
from fashionlab.runs import best_so_far, in_order, number, objective, objectives_of, pareto_front
from fashionlab.status import Status


def plot(runs: list[dict], path: Path, found: Found | None = COMPUTE) -> None:
    import matplotlib  # matplotlib takes a second to import: only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric, mode = runs[0]["objective"]["metric"], runs[0]["objective"]["mode"]
    ordered = in_order(runs)
    xs = [number(r) if number(r) is not None else i for i, r in enumerate(ordered)]
    found = importance(runs) if found is COMPUTE else found
    own = [r for r in runs if r.get("confirms") is None]
    multi = [r for r in own if r["status"] == Status.COMPLETED and objectives_of(r)]
    panels = (3 if found else 1) + (1 if multi else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    if multi:  # the last panel: the first two objectives, the front joined
        ax = axes[0][-1]
        (a, b) = objectives_of(multi[0])[:2]
        ax.scatter(
            [objectives_of(r)[1]["value"] for r in multi],
            [objectives_of(r)[0]["value"] for r in multi],
            label="completed",
        )
        front = sorted(pareto_front(own), key=lambda r: objectives_of(r)[1]["value"])
        ax.plot(
            [objectives_of(r)[1]["value"] for r in front],
            [objectives_of(r)[0]["value"] for r in front],
            "o-",
            color="tab:red",
            label="Pareto front",
        )
        for r in front:
            ax.annotate(str(number(r)), (objectives_of(r)[1]["value"], objectives_of(r)[0]["value"]), fontsize=8)
        ax.set(xlabel=f"{b['metric']} ({b['mode']})", ylabel=f"{a['metric']} ({a['mode']})", title="the Pareto front")
        ax.legend()
    ax = axes[0][0]
    finite = [objective(r) for r in ordered if not math.isnan(objective(r))]
    floor = min(finite, default=0)
    for status, style in (
        (Status.COMPLETED, dict(marker="o", label="completed")),
        (Status.PRUNED, dict(marker="v", color="tab:orange", label="pruned (value when stopped)")),
    ):
        pts = [(x, objective(r)) for x, r in zip(xs, ordered) if r["status"] == status]
        if pts:
            ax.scatter(*zip(*pts), **style)
    failed = [x for x, r in zip(xs, ordered) if not Status(r["status"]).has_result]
    if failed:
        ax.scatter(failed, [floor] * len(failed), marker="x", color="red", label="failed")
    ax.step(xs, best_so_far(ordered, mode), where="post", color="black", label="best so far")
    repeated = confirmed(runs)
    if repeated:
        ax.errorbar(
            [g.first["trial"] for g in repeated],
            [g.mean for g in repeated],
            yerr=[g.sd for g in repeated],
            fmt="D",
            color="tab:green",
            capsize=4,
            label="confirmed: mean +/- sd over seeds",
        )
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} per trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    if found:
        scores, source, data = found
        names = list(scores)
        key = next(iter(scores[names[0]]))  # the most important by the first evaluator
        ax = axes[0][1]
        values = [p[key] for p, _ in data]
        ax.scatter(values, [v for _, v in data])
        if all(isinstance(v, (int, float)) and v > 0 for v in values) and max(values) / min(values) > 20:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=source.split(",")[0].split(" of the")[0], title=f"against {key}, which matters most")
        ax = axes[0][2]
        params = list(scores[names[0]])[::-1]
        height = 0.8 / len(names)
        for i, name in enumerate(names):
            ax.barh(
                [j + i * height for j in range(len(params))],
                [scores[name].get(k, 0) for k in params],
                height=height,
                label=name,
            )
        ax.set_yticks([j + height * (len(names) - 1) / 2 for j in range(len(params))], params)
        ax.set(xlabel="importance", title="which parameters matter")
        ax.legend()
        fig.text(0.5, 0.005, f"importance from {source}", ha="center", fontsize=8)
    fig.tight_layout()
    commit(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
