"""The sweeper's settings, checked before anything starts: its numbers, the study's direction (from
objective.mode), what a multi-objective search cannot do, and parameter sets against the search space.

Each mistake is one UserError naming the key and the fix.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from fashionlab.config import UserError, check_numbers
from fashionlab.search.study import DIRECTIONS

# key under hydra.sweeper -> (type, smallest allowed value, whether that value itself is allowed, largest or None).
# RDBStorage refuses some of these itself, the journal file none.
SWEEPER_NUMBERS = {
    "n_trials": (int, 1, True, None),
    "n_jobs": (int, 1, True, None),
    "max_failure_rate": (float, 0.0, True, 1.0),
    "heartbeat_interval": (int, 1, True, None),
    "grace_period": (int, 1, True, None),
    "storage_timeout": (float, 0.0, True, None),
    "confirm.top_k": (int, 0, True, None),
    "confirm.seeds": (int, 1, True, None),
    "timeout": (float, 0.0, True, None),
    "patience": (int, 1, True, None),
    "target": (float, -math.inf, True, None),
}


def check_sweeper(sweeper: DictConfig) -> None:
    """The sweeper's numbers (hydra.sweeper.*): a UserError naming what is wrong."""
    problems = check_numbers(sweeper, SWEEPER_NUMBERS, "hydra.sweeper.")
    beat, grace = sweeper.get("heartbeat_interval"), sweeper.get("grace_period")
    if not problems and beat and grace and grace <= beat:
        problems.append(
            f"hydra.sweeper.grace_period={grace} must be longer than hydra.sweeper.heartbeat_interval={beat} "
            f"(a running trial would be taken for dead between two heartbeats)"
        )
    if problems:
        raise UserError(
            "Bad config value: " + "; ".join(problems) + ". Fix the override on the command line (or the "
            "hparams_search preset) and run again."
        )


def directions(cfg: DictConfig, given: list[str]) -> list[str]:
    """The study's directions: objective.mode (objective.metrics' modes for several objectives), which
    hydra.sweeper.direction (`given`) defaults to; a contradicting direction is refused."""
    mode = OmegaConf.select(cfg, "objective.mode", default="max")
    modes = [str(o["mode"]) for o in cfg.objective.get("metrics") or []] or [mode]
    wanted: list[str] = [DIRECTIONS[m] for m in modes]
    if [DIRECTIONS.get(str(d)) for d in given] not in (wanted, wanted[:1]):
        raise UserError(
            f"hydra.sweeper.direction={given} contradicts the objective's modes {modes}: the sweeper optimises "
            f"what a job returns, which is best when objective.mode (and objective.metrics) say. Set "
            f"objective.mode / objective.metrics only (hydra.sweeper.direction follows them)."
        )
    return wanted


def check_multi_objective(pruner_target: str, target: float | None, patience: int | None) -> None:
    """A multi-objective search has no single best trial: what needs one is refused."""
    refused = [
        name
        for name, given in (("hydra.sweeper.target", target), ("hydra.sweeper.patience", patience))
        if given is not None
    ]
    if pruner_target.rsplit(".", 1)[-1] == "HyperbandPruner":
        refused.append("hydra/sweeper/pruner=hyperband (it builds studies of its own, single-objective)")
    if refused:
        raise UserError(
            f"A multi-objective search (objective.metrics) has no single best trial, only a Pareto front, so "
            f"{' and '.join(refused)} cannot apply to it. Leave them out (n_trials and hydra.sweeper.timeout "
            f"still end the search; pruning with median or successive_halving judges the first objective)."
        )


def fits(distribution: BaseDistribution, value: object) -> bool:
    """Whether `value` is one the search space could draw for this parameter."""
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        if not distribution.low <= value <= distribution.high:
            return False
        step = distribution.step
        return step is None or math.isclose((value - distribution.low) / step, round((value - distribution.low) / step))
    return False


def check_fits(params: dict, space: dict[str, BaseDistribution], where: str) -> None:
    """Every key of `params` is a searched parameter, every value inside its space: else a UserError."""
    for key, value in params.items():
        if key not in space:
            raise UserError(
                f"{where} sets {key}, which the search does not search: its parameters are "
                f"{', '.join(space)} (hydra.sweeper.params). Use those keys."
            )
        if not fits(space[key], value):
            raise UserError(
                f"{where}: {key}={value!r} is outside its search space ({space[key]}). Choose a value inside it, "
                f"or widen hydra.sweeper.params.{key}."
            )
