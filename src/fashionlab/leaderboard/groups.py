"""Runs that differ only by their seed (or data.split_seed) are repeats of one configuration: its n, mean,
standard deviation and 95% t-interval, and whether the best can be told apart from the runner-up (Welch's t-test).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from functools import cmp_to_key

from fashionlab.run_state import is_better
from fashionlab.runs import REPEAT_KEYS, configuration, differing_keys, objective, rank, ranked
from fashionlab.status import Status

ALPHA = 0.05  # Welch's t-test of the best configuration against the runner-up; 95% intervals


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
        from scipy.stats import t  # scipy takes a second to import: only where there are repeats

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
        ra, rb = rank(a.status), rank(b.status)
        if ra != rb:
            return ra - rb
        if (len(a.done) > 1) != (len(b.done) > 1):  # confirmed before single runs
            return -1 if len(a.done) > 1 else 1
        return -1 if is_better(a.mean, b.mean, mode) else 1 if is_better(b.mean, a.mean, mode) else 0

    return sorted((Group(g) for g in by_key.values()), key=cmp_to_key(compare))


def confirmed(runs: list[dict]) -> list[Group]:
    """The configurations of a search's trials that were repeated with other seeds (hydra.sweeper.confirm)."""
    return [g for g in grouped(runs) if g.first.get("trial") is not None and len(g.done) > 1]


def verdict(groups: list[Group]) -> str | None:
    """Whether the best repeated configuration can be told apart from the runner-up (Welch's t-test)."""
    repeated = [g for g in groups if len(g.done) > 1]
    if len(repeated) < 2:
        return None
    best, second = repeated[0], repeated[1]
    from scipy.stats import ttest_ind  # scipy takes a second to import: only where there are repeats

    with warnings.catch_warnings():  # equal values: scipy warns of precision loss, and p is nan (a tie)
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(best.values, second.values, equal_var=False).pvalue)
    keys = [k for k in differing_keys([g.first for g in groups]) if k not in REPEAT_KEYS]
    a, b = label(best.first, keys), label(second.first, keys)
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


def label(run: dict, keys: list[str]) -> str:
    """A search's trial by its number; a configuration of a grid by what it chose."""
    n = run.get("confirms", run.get("trial"))
    return f"trial {n}" if n is not None else ",".join(f"{k}={fmt(run['hparams'].get(k))}" for k in keys)


def fmt(value: object) -> str:
    """A value as the tables show it: counts with thousands separators, floats to 4 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:  # a count: model/params
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
