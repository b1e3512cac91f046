"""Every use of Hydra's private API, in one place. Checked against hydra-core 1.4.0rc3, hydra-optuna-sweeper
1.4.0rc3 and hydra-submitit-launcher 1.4.0rc3 (pinned in pyproject.toml).

The sweeper reuses hydra-optuna-sweeper's parsing of a search space (`choice(...)`, `interval(...)`, `tag(log,
...)`) and of a grid, which live in its private `_impl` module; it builds the launcher the way Hydra's own sweepers
do; it tells the launchers apart by their class paths (the basic launcher's is private); and it submits a SLURM
trial as Hydra's submitit launcher does, but waits for it itself (search/slurm.py), since that launcher's `launch`
waits for ever on a job SLURM lost. `check()` says what no longer holds after an upgrade: tests/test_internals.py
runs it, and every search runs it before it starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

CHECKED = "hydra-core 1.4.0rc3, hydra-optuna-sweeper 1.4.0rc3, hydra-submitit-launcher 1.4.0rc3"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def search_space(params: DictConfig | None, arguments: list[str]) -> tuple[dict, dict, list[str]]:
    """(distributions, fixed values, fixed overrides) of `hydra.sweeper.params` and the command line's sweep
    overrides (a command-line override replaces the preset's entry for its key), as hydra-optuna-sweeper parses
    them."""
    # It imports optuna: only when a search starts, never in Hydra's plugin scan.
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    given = [f"{k!s}={v}" for k, v in (params or {}).items()]
    space, fixed, fixed_overrides = create_params_from_overrides(given + list(arguments))
    for name in fixed:
        space.pop(name, None)
    return space, fixed, fixed_overrides


def grid_choices(distribution: Any) -> Any:
    """The values a grid takes for one searched parameter (hydra/sweeper/sampler=grid)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl  # imports optuna: see search_space

    return OptunaSweeperImpl._to_grid_sampler_choices(distribution)


def launcher(hydra_context: Any, task_function: Any, config: DictConfig) -> Any:
    """The launcher of `hydra.launcher`, set up as Hydra's own sweepers set theirs up."""
    return Plugins.instance().instantiate_launcher(
        config=config, hydra_context=hydra_context, task_function=task_function
    )


def submit(launcher: Any, overrides: list[str], job_idx: int) -> Any:
    """Submit one job through Hydra's submitit launcher (its executor, its parameters, its job folder) and return
    the submitit Job, without waiting for it: what BaseSubmititLauncher.launch does before it waits."""
    import submitit  # the launcher's own lazy import: only when a SLURM search launches

    params = launcher.params
    init_keys = {"max_num_timeout", "python"}
    init = {"folder": params["submitit_folder"], **{f"slurm_{k}": v for k, v in params.items() if k in init_keys}}
    executor = submitit.AutoExecutor(cluster=launcher._EXECUTOR, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in base else f"{launcher._EXECUTOR}_{k}": v
            for k, v in params.items()
            if k not in init_keys | {"submitit_folder"}
        }
    )
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    args = (list(overrides), "hydra.sweep.dir", job_idx, f"job_id_for_{job_idx}", Singleton.get_state())
    (job,) = executor.map_array(launcher, *([a] for a in args))
    return job


def check() -> list[str]:
    """What this module relies on and the installed Hydra plugins no longer have; [] when all holds."""
    problems = []
    probes = {
        "hydra_optuna_sweeper._impl.create_params_from_overrides": lambda: search_space(
            OmegaConf.create({"x": "choice(1,2)"}), ["y=interval(0.1,1.0)"]
        ),
        "OptunaSweeperImpl._to_grid_sampler_choices": lambda: grid_choices(
            search_space(None, ["x=choice(1,2)"])[0]["x"]
        ),
        "hydra.core.plugins.Plugins.instantiate_launcher": lambda: _has("hydra.core.plugins", "Plugins"),
        BASIC_LAUNCHER: lambda: _has(*BASIC_LAUNCHER.rsplit(".", 1)),
        JOBLIB_LAUNCHER: lambda: _has(*JOBLIB_LAUNCHER.rsplit(".", 1)),
        SLURM_LAUNCHER: lambda: _has(*SLURM_LAUNCHER.rsplit(".", 1)),
        "BaseSubmititLauncher.params and _EXECUTOR": lambda: _submitit_launcher_fields(),
        "hydra_submitit_launcher.config.BaseQueueConf": lambda: _has(
            "hydra_plugins.hydra_submitit_launcher.config", "BaseQueueConf"
        ),
    }
    for name, probe in probes.items():
        try:
            probe()
        except Exception as e:  # noqa: BLE001 - any failure is what the check is for
            problems.append(f"{name} ({type(e).__name__}: {e})")
    if not problems and search_space(None, ["x=choice(1,2)"])[0]["x"].choices != (1, 2):
        problems.append("create_params_from_overrides parses choice(1,2) differently")
    return problems


def _has(module: str, name: str) -> None:
    getattr(importlib.import_module(module), name)


def _submitit_launcher_fields() -> None:
    made = SlurmLauncher(submitit_folder="x")
    assert made.params == {"submitit_folder": "x"} and SlurmLauncher._EXECUTOR == "slurm"


def upgrade_message(problems: list[str]) -> str:
    return (
        f"The installed Hydra plugins no longer have what fashionlab's sweeper uses of their private API: "
        f"{'; '.join(problems)}. fashionlab/search/hydra_internals.py was checked against {CHECKED}: install "
        f"those versions (pip install -e . does), or update that module."
    )
