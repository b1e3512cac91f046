"""Compare runs: a leaderboard of every run under a folder, a plot, and the search-level TensorBoard run.

Reads each run's metrics.json (written by every run and every trial: pruned and failed ones too). Ranked:
completed runs by their objective, then pruned trials (stopped early, so not comparable with finished ones),
then runs that failed. Runs that differ only by their seed (or data.split_seed) are repeats of one
configuration: where there are repeats, the configurations come first, with n, mean, standard deviation and
a 95% t-interval, and whether the best can be told apart from the runner-up (Welch's t-test).
Kept free of torch except for writing the TensorBoard run.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fashionlab.progress import is_better
from fashionlab.status import Status

SWEEP_RUN = "_sweep"  # the search-level TensorBoard run, beside the trials' runs
_RANK = {Status.COMPLETED: 0, Status.PRUNED: 1}  # everything else after these
REPEAT_KEYS = ("seed", "data.split_seed")  # what a repeat varies: runs that differ only here are one configuration
ALPHA = 0.05  # Welch's t-test of the best configuration against the runner-up; 95% intervals


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


def objective(run: dict) -> float:
    value = run["objective"]["value"]
    return float("nan") if value is None else value


def number(run: dict) -> int | None:
    """The trial number in a study, else the job number in a multirun, else None (a single run)."""
    return run.get("trial", run["job"].get("num"))


def ranked(runs: list[dict]) -> list[dict]:
    """Completed runs best first, then pruned trials best first, then the rest."""
    mode = runs[0]["objective"]["mode"] if runs else "max"

    def compare(a: dict, b: dict) -> int:
        ra, rb = _RANK.get(a["status"], 2), _RANK.get(b["status"], 2)
        if ra != rb:
            return ra - rb
        va, vb = objective(a), objective(b)
        return -1 if is_better(va, vb, mode) else 1 if is_better(vb, va, mode) else 0

    return sorted(runs, key=cmp_to_key(compare))


def configuration(hparams: dict) -> str:
    """What a run chose, less what a repeat varies: runs with the same text are repeats of one configuration."""
    return json.dumps({k: v for k, v in hparams.items() if k not in REPEAT_KEYS}, sort_keys=True, default=str)


def config_id(hparams: dict) -> str:
    """A short, stable name of the configuration (the HPARAMS column `repeat_group`)."""
    return hashlib.sha1(configuration(hparams).encode()).hexdigest()[:6]


def seed_of(run: dict) -> object:
    return run.get("seed", run["hparams"].get("seed"))


@dataclass
class Group:
    """The runs of one configuration: the search's trial (if any) and its repeats."""

    runs: list[dict]

    @property
    def first(self) -> dict:
        """The run that names the group: the trial (not one of its confirmation runs), else the first."""
        return next((r for r in self.runs if r.get("confirms") is None), self.runs[0])

    @property
    def done(self) -> list[dict]:
        return [r for r in self.runs if r["status"] == Status.COMPLETED and not math.isnan(objective(r))]

    @property
    def values(self) -> list[float]:
        return [objective(r) for r in self.done]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.done else objective(self.first)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.done) > 1 else float("nan")

    def interval(self) -> float:
        """Half the width of the 95% t-interval of the mean."""
        n = len(self.done)
        if n < 2:
            return float("nan")
        from scipy.stats import t

        return float(t.ppf(1 - ALPHA / 2, n - 1)) * self.sd / math.sqrt(n)

    def test(self) -> list[float]:
        return [r["test/acc"] for r in self.done if r.get("test/acc") is not None]

    @property
    def status(self) -> Status:
        return Status.COMPLETED if self.done else Status(self.first["status"])


def grouped(runs: list[dict]) -> list[Group]:
    """One Group per configuration, best first: repeated configurations (by mean), then single runs as ranked()."""
    by_key: dict[str, list[dict]] = {}
    for r in ranked(runs):
        by_key.setdefault(configuration(r["hparams"]), []).append(r)
    mode = runs[0]["objective"]["mode"] if runs else "max"

    def compare(a: Group, b: Group) -> int:
        ra, rb = _RANK.get(a.status, 2), _RANK.get(b.status, 2)
        if ra != rb:
            return ra - rb
        if (len(a.done) > 1) != (len(b.done) > 1):  # confirmed before single runs
            return -1 if len(a.done) > 1 else 1
        return -1 if is_better(a.mean, b.mean, mode) else 1 if is_better(b.mean, a.mean, mode) else 0

    return sorted((Group(g) for g in by_key.values()), key=cmp_to_key(compare))


def verdict(groups: list[Group]) -> str | None:
    """Whether the best repeated configuration can be told apart from the runner-up (Welch's t-test)."""
    repeated = [g for g in groups if len(g.done) > 1]
    if len(repeated) < 2:
        return None
    best, second = repeated[0], repeated[1]
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # equal values: scipy warns of precision loss, and p is nan (a tie)
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(best.values, second.values, equal_var=False).pvalue)
    keys = [k for k in differing_keys([g.first for g in groups]) if k not in REPEAT_KEYS]
    a, b = _label(best.first, keys), _label(second.first, keys)
    metric = best.first["objective"]["metric"]
    said = (
        f"{a} is better than {b}: Welch's t-test p = {p:.3f} < {ALPHA}"
        if p < ALPHA  # nan (no spread at all) is not
        else f"{a} and {b} tie: the data cannot tell them apart (Welch's t-test p = {p:.2f} >= {ALPHA})"
    )
    return (
        f"best against runner-up, {metric} over seeds: {a} {best.mean:.4f} +/- {best.sd:.4f} (n={len(best.done)}), "
        f"{b} {second.mean:.4f} +/- {second.sd:.4f} (n={len(second.done)}): {said}"
    )


def _label(run: dict, keys: list[str]) -> str:
    """A search's trial by its number; a configuration of a grid by what it chose."""
    n = run.get("confirms", run.get("trial"))
    return f"trial {n}" if n is not None else ",".join(f"{k}={_fmt(run['hparams'].get(k))}" for k in keys)


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
                *[_fmt(g.first["hparams"].get(k)) for k in keys],
                str(len(g.done)),
                f"{g.mean:.4f} +/- {g.sd:.4f}" if len(g.done) > 1 else _fmt(g.mean),
                f"{g.mean - g.interval():.4f} .. {g.mean + g.interval():.4f}" if len(g.done) > 1 else "-",
                f"{statistics.fmean(test):.4f} +/- {statistics.stdev(test):.4f}"
                if len(test) > 1
                else _fmt(test[0] if test else None),
                ",".join(str(seed) for seed in sorted((seed_of(r) for r in g.runs), key=_number_first)),
                g.status,
            ]
        )
    table = _table(header, rows)
    said = verdict(groups)
    note = (
        f"Configurations: runs that differ only by {' or '.join(REPEAT_KEYS)} are one; n counts the completed runs; "
        f"sd is the standard deviation over them, the interval the mean's 95% t-interval."
    )
    return "\n".join([table, "", note, *([said] if said else [])])


def _number_first(value: object) -> tuple:
    return (not isinstance(value, (int, float)), value if isinstance(value, (int, float)) else 0, str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def differing_keys(runs: list[dict]) -> list[str]:
    """Hyperparameters that take more than one value among the runs, in the order runs list them (searched first)."""
    keys = list(dict.fromkeys(k for r in runs for k in r["hparams"]))
    return [k for k in keys if len({json.dumps(r["hparams"].get(k), sort_keys=True) for r in runs}) > 1]


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:  # a count: model/params
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


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


Found = tuple[dict[str, dict[str, float]], str, list[tuple[dict, float]]]  # what importance() returns
_COMPUTE: Any = object()  # leaderboard() and plot() compute the importance themselves unless given it


def leaderboard(runs: list[dict], found: Found | None = _COMPUTE) -> str:
    """The configurations (where there are repeats), then every run but a search's confirmation runs. A
    multi-objective search's runs show every objective, the Pareto front first (marked *). `found`: the
    runs' importance(), if the caller has it (it fits a random forest: computed once for table and plot)."""
    found = importance(runs) if found is _COMPUTE else found
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
                *[_fmt(r["hparams"].get(k)) for k in keys],
                _fmt(r["objective"]["value"]),
                *[_fmt(values.get(m, r.get(m))) for m in others],
                _fmt(r.get("test/acc")),
                epochs,
                f"{r['wall_time_s']:.1f}",
                r["status"],
            ]
        )
    notes = [f"test/acc: the test split, once, with the weights of each run's best epoch (chosen by {metric})."]
    if others:
        notes.append(f"front (*): the Pareto front of {', '.join([metric, *others])}: no other run is as good in all.")
    table = "\n".join([_table(header, rows), "", *notes, *best_run_classes(own), *importance_line(found)])
    return table if grouped_table is None else f"{grouped_table}\n\nRuns:\n{table}"


def best_run_classes(runs: list[dict]) -> list[str]:
    """The best completed run's test accuracy per class, and the two classes it confuses most."""
    from fashionlab.evaluate import most_confused

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


MIN_TRIALS = 8  # fewer runs say little about which parameter matters


def importance(runs: list[dict]) -> Found | None:
    """Which searched parameters matter, by Optuna's own evaluators: fANOVA and PED-ANOVA (optuna-dashboard's).

    From the completed runs' objective where there are enough of them; else (a pruned search completes only
    its best trials) from the value every run reported at the deepest epoch they all reached, pruned ones
    included. Returns ({evaluator: {parameter: importance}}, what it was computed from, the (params, value)
    pairs), or None when there is too little to go on.
    """
    own = [r for r in runs if r.get("confirms") is None]
    keys = [k for k in differing_keys(own) if k not in REPEAT_KEYS]
    metric, mode = own[0]["objective"]["metric"], own[0]["objective"]["mode"]
    done = [r for r in own if r["status"] == Status.COMPLETED and not math.isnan(objective(r))]
    if len(done) >= MIN_TRIALS:
        data = [(r["hparams"], objective(r)) for r in done]
        source = f"{metric} of the {len(done)} completed runs"
    else:
        curves = [r for r in own if Status(r["status"]).has_result and r["objective"].get("curve")]
        if len(curves) < MIN_TRIALS:
            return None
        depth = min(max(int(e) for e in r["objective"]["curve"]) for r in curves)
        data = [(r["hparams"], r["objective"]["curve"][str(depth)]) for r in curves]
        source = (
            f"{metric} at epoch {depth}, the deepest epoch all {len(curves)} runs reached (pruned ones included; "
            f"{len(done)} completed)"
        )
    keys = [k for k in keys if all(isinstance(p.get(k), (bool, int, float, str)) for p, _ in data)]
    if not keys:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for k in keys:
        values = [p[k] for p, _ in data]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) > 2:
            low, high = float(min(values)), float(max(values))
            distributions[k] = optuna.distributions.FloatDistribution(low, high, log=low > 0 and high / low > 20)
        else:
            distributions[k] = optuna.distributions.CategoricalDistribution(sorted(set(values), key=str))
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for p, value in data:
        params = {
            k: float(p[k]) if isinstance(distributions[k], optuna.distributions.FloatDistribution) else p[k]
            for k in keys
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    found = {}
    for name, evaluator in (
        ("fANOVA", optuna.importance.FanovaImportanceEvaluator(seed=0)),
        ("PED-ANOVA", optuna.importance.PedAnovaImportanceEvaluator()),
    ):
        try:
            found[name] = dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except Exception as e:  # noqa: BLE001 - one evaluator that cannot (e.g. too few runs) leaves the other
            print(f"compare: {name} importance not computed: {e}", file=sys.stderr)
    return (found, source, data) if found else None


def importance_line(found: Found | None) -> list[str]:
    if found is None:
        return []
    scores, source, _ = found
    names = list(scores)
    first = scores[names[0]]
    parts = [f"{k} " + " / ".join(f"{scores[n].get(k, float('nan')):.2f}" for n in names) for k in first]
    return [f"importance ({' / '.join(names)}), from {source}: " + ", ".join(parts)]


def in_order(runs: list[dict]) -> list[dict]:
    """Trials in the order they were started (trial or job number), else by folder name; not a search's
    confirmation runs (they repeat a trial: see confirmed())."""
    own = [r for r in runs if r.get("confirms") is None]
    return sorted(own, key=lambda r: (number(r) is None, number(r) or 0, r["name"]))


def confirmed(runs: list[dict]) -> list[Group]:
    """The configurations of a search's trials that were repeated with other seeds (hydra.sweeper.confirm)."""
    return [g for g in grouped(runs) if g.first.get("trial") is not None and len(g.done) > 1]


def best_so_far(runs: list[dict], mode: str) -> list[float]:
    """After each run (in order), the best objective of the completed runs so far."""
    out, best = [], float("nan")
    for r in runs:
        if r["status"] == Status.COMPLETED and is_better(objective(r), best, mode):
            best = objective(r)
        out.append(best)
    return out


def plot(runs: list[dict], path: Path, found: Found | None = _COMPUTE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric, mode = runs[0]["objective"]["metric"], runs[0]["objective"]["mode"]
    ordered = in_order(runs)
    xs = [number(r) if number(r) is not None else i for i, r in enumerate(ordered)]
    found = importance(runs) if found is _COMPUTE else found
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sweep_run(sweep_dir: Path, runs: list[dict], table: str, found: Found | None) -> None:
    """The search-level TensorBoard run, rewritten whole: each trial's objective by trial number (completed and
    pruned apart), the best so far, confirmed trials' mean and spread, the leaderboard `table` as text, and the
    importance `found`."""
    from torch.utils.tensorboard import SummaryWriter

    ordered = [r for r in in_order(runs) if number(r) is not None]
    if not ordered:
        return
    metric, mode = ordered[0]["objective"]["metric"], ordered[0]["objective"]["mode"]
    folder = sweep_dir / SWEEP_RUN
    for old in folder.glob("events.out.tfevents.*"):  # one study, many workers and continuations: one view
        old.unlink()
    with SummaryWriter(str(folder)) as w:
        for r, best in zip(ordered, best_so_far(ordered, mode)):
            value = objective(r)
            if r["status"] == Status.COMPLETED and not math.isnan(value):
                w.add_scalar(f"sweep/{metric}", value, number(r))
            elif r["status"] == Status.PRUNED and not math.isnan(value):
                w.add_scalar(f"sweep/pruned_{metric}", value, number(r))
            if not math.isnan(best):
                w.add_scalar(f"sweep/best_{metric}", best, number(r))
        for g in confirmed(runs):  # mean and spread over seeds, at the trial's number
            w.add_scalar(f"sweep/confirmed_{metric}_mean", g.mean, g.first["trial"])
            w.add_scalar(f"sweep/confirmed_{metric}_sd", g.sd, g.first["trial"])
        w.add_text("sweep/leaderboard", "\n".join("    " + line for line in table.splitlines()), 0)
        for line in importance_line(found):
            w.add_text("sweep/importance", line, 0)


class SweepSummary(Callback):
    """At the end of a multirun: the search-level TensorBoard run, leaderboard.txt and comparison.png."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import logging

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = [r for r in load_runs(sweep_dir) if number(r) is not None]
        if not runs:
            return
        found = importance(runs)
        table = leaderboard(runs, found)
        write_sweep_run(sweep_dir, runs, table, found)
        (sweep_dir / "leaderboard.txt").write_text(table + "\n")
        plot(runs, sweep_dir / "comparison.png", found)
        logging.getLogger(__name__).info(f"leaderboard ({sweep_dir}):\n{table}")
