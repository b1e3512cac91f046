"""The project's Optuna sweeper (`hydra/sweeper=fashionlab_optuna`), as Hydra sees it: a thin shell.

Hydra imports every module under hydra_plugins/ to find its plugins, for every run, `--help` and typo alike;
so this module imports nothing of the search. The search itself (fashionlab/search/loop.py, with Optuna) is
imported when a sweep starts. hydra-optuna-sweeper's own plugin is built the same way (its `_impl` module).
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class FashionlabOptunaSweeper(Sweeper):
    """Every key of hydra.sweeper (config.py) is read from the config when the sweep is set up."""

    def __init__(self, **settings: Any) -> None:
        self.search: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from fashionlab.search.loop import Search  # Optuna: only when a sweep starts

        self.search = Search(config, hydra_context, task_function)

    def sweep(self, arguments: list[str]) -> None:
        self.search.sweep(arguments)
