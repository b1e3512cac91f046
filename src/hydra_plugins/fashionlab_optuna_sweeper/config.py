"""The sweeper's config (`hydra/sweeper=fashionlab_optuna`) and its pruner group (`hydra/sweeper/pruner=...`).

Built on hydra-optuna-sweeper's dataclasses: every key of `hydra/sweeper=optuna` works the same here, and
the sampler options (`hydra/sweeper/sampler=tpe|random|grid|...`) are that plugin's. Each pruner option's
keys are the pruner's own arguments (https://optuna.readthedocs.io/en/stable/reference/pruners.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """Stop a trial whose value at an epoch is worse than the median of earlier trials at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    """At epochs min_resource * reduction_factor^k, keep only the best 1/reduction_factor of the trials so far."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    # 1 epoch. Optuna's "auto" waits for a first completed trial to estimate it: the trials before it are
    # never compared at epoch 1, and the first trials after it compete with no one there.
    min_resource: Any = 1
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    """Several successive-halving brackets with different first stops (a hedge against pruning too early)."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class NopPrunerConfig(PrunerConfig):
    """No pruning: every trial trains to its last epoch."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class ConfirmConfig:
    """After the search, train its best trials again with new seeds (README, "Winners you can trust")."""

    # The top_k completed trials, each with `seeds` new seeds (seed + 1, ..., seed + seeds), into
    # <sweep dir>/confirm/<trial folder>/seed=<s>/. 0: none; `python src/confirm.py DIR` confirms a study later.
    top_k: int = 0
    seeds: int = 3
    # Each repeat also draws its own validation split (data.split_seed = its seed): the search's one split has a
    # sampling error of its own (about 0.004 in val/acc here) that every trial shares and no seed removes.
    split_seed: bool = True
    # Confirm only: start no new trial (src/confirm.py sets it).
    only: bool = False


@dataclass
class FashionlabOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.fashionlab_optuna_sweeper.optuna_sweeper.FashionlabOptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    # Which way is better comes from objective.mode (max -> maximize): one source for the job, which keeps its
    # best epoch, and for the study. A different direction given here is refused.
    direction: Any = "${objective.mode}"

    # The pruner the jobs ask after every epoch (hydra/sweeper/pruner=median|successive_halving|hyperband|none);
    # any Optuna pruner with its arguments, e.g. a conf/hydra/sweeper/pruner/<name>.yaml of your own.
    pruner: Any = MISSING
    # Trials kept in flight (a freed slot is refilled at once); null: as many as the launcher runs at once
    # (joblib's n_jobs, SLURM's array_parallelism; 1 for the basic launcher).
    n_jobs: int | None = None  # type: ignore[assignment]
    # Running trials record a heartbeat every heartbeat_interval seconds; a trial without one for grace_period
    # seconds (its worker died) is marked failed by the next worker that starts or asks for a trial.
    heartbeat_interval: int = 30
    grace_period: int = 120
    # A dead worker's trial is tried again once, with the same parameters.
    retry_dead_trials: bool = True
    # How long a worker waits for an unreachable database (a restart) before it stops with a message.
    storage_timeout: float = 120.0
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)

    # Budgets besides n_trials; each ends this worker's search with a line that says why (trials running then
    # finish, and are recorded). timeout: seconds of wall time for this worker, after which no trial starts.
    # target: a completed trial's objective at least this good (>= for max, <= for min). patience: that many
    # finished trials in a row (completed, pruned or failed) since the study's best brought no better one.
    timeout: float | None = None
    target: float | None = None
    patience: int | None = None
    # Parameter sets tried first, once per study however often the search starts, e.g.
    # [{optimizer: sgd, optimizer.lr: 0.001}]: keys are the search's parameters (hydra.sweeper.params); one
    # that a set leaves out is drawn by the sampler.
    enqueue: list[Any] = field(default_factory=list)
    # Folders of finished runs (a grid, another study) added to the study once as completed trials, where the
    # runs chose a value for every searched parameter that fits the search space and report the same
    # objective.metric. They inform the sampler and do not count towards n_trials.
    warm_start_from: list[str] = field(default_factory=list)


PROVIDER = "fashionlab_optuna_sweeper"
cs = ConfigStore.instance()
cs.store(
    group="hydra/sweeper",
    name="fashionlab_optuna",
    node=FashionlabOptunaSweeperConf,
    provider=PROVIDER,
)
for name, node in (
    ("median", MedianPrunerConfig),
    ("successive_halving", SuccessiveHalvingPrunerConfig),
    ("hyperband", HyperbandPrunerConfig),
    ("none", NopPrunerConfig),
):
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
