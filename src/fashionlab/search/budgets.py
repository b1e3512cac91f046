"""When a search stops starting trials, besides n_trials: its failure budget, and the budgets timeout, target and
patience. Functions of the study's trials and the settings: each returns why it stops ("the search stops: <why>"),
or None while the search goes on. The trials running then finish and are recorded.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from fashionlab.search.study import own_failure


def over_failure_budget(failed: int, n_trials: int, max_failure_rate: float, sweep_dir: str) -> str | None:
    """More than max_failure_rate of n_trials failed by themselves (diverged, raised): the search stops, exit 3."""
    if failed <= max_failure_rate * n_trials:
        return None
    return (
        f"The search stopped: {failed} of its {n_trials} trials failed, more than hydra.sweeper.max_failure_rate="
        f"{max_failure_rate}. Each failed trial's train.log and metrics.json (under {sweep_dir}) say why."
    )


def best_of(trials: list[FrozenTrial], maximize: bool) -> FrozenTrial | None:
    """The best completed trial (the first of equals), as Study.best_trial picks it; None for several objectives."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == 1]
    if not done:
        return None
    return max(done, key=lambda t: t.value) if maximize else min(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


def why_spent(
    trials: list[FrozenTrial],
    maximize: bool,
    elapsed: float,
    metric: str,
    timeout: float | None = None,
    target: float | None = None,
    patience: int | None = None,
) -> str | None:
    """Whether hydra.sweeper.timeout (seconds of this worker), target (a completed trial at least this good) or
    patience (that many finished trials in a row without a better one) says to start no more trials, and why."""
    if timeout is not None and elapsed >= timeout:
        return f"hydra.sweeper.timeout={timeout:g} s reached ({duration(elapsed)} elapsed)"
    if target is None and patience is None:
        return None
    best = best_of(trials, maximize)
    if best is not None and target is not None and ((best.value >= target) if maximize else (best.value <= target)):  # type: ignore[operator]
        return f"trial {best.number} reached the target (hydra.sweeper.target={target:g}): {metric} {best.value:.4f}"
    if patience is not None:
        finished = sorted(
            (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or own_failure(t)),
            key=lambda t: t.datetime_complete or t.datetime_start,  # type: ignore[arg-type, return-value]
        )
        since = next((i for i, t in enumerate(finished) if best is not None and t.number == best.number), -1)
        without = len(finished) - since - 1
        if without >= patience:
            after = f"since trial {best.number} ({metric} {best.value:.4f})" if best else "without a completed one"
            return (
                f"{without} finished trials in a row brought no better one {after} (hydra.sweeper.patience={patience})"
            )
    return None


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
