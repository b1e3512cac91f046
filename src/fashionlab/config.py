"""Checks of what the user asked for, made before any data is read or any file is written.

A mistake of the user is a `UserError`: `train.py` prints it as one paragraph and exits with status 2.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    import torch


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class StopWorker(UserError):
    """What stops a search's worker, not only its trial: a full disk, a study database that stays away."""


# key -> (type, smallest allowed value, whether that value itself is allowed, largest allowed value or None)
NUMBERS = {
    "optimizer.lr": (float, 0.0, False, None),
    "optimizer.weight_decay": (float, 0.0, True, None),
    "optimizer.momentum": (float, 0.0, True, None),
    "data.batch_size": (int, 1, True, None),
    "data.eval_batch_size": (int, 1, True, None),
    "data.val_size": (float, 0.0, False, None),  # a number of images, or a share below 1
    "data.test_size": (float, 0.0, False, None),
    "data.num_workers": (int, 0, True, None),
    "trainer.max_epochs": (int, 1, True, None),
    "trainer.latency_images": (int, 1, True, None),
    "trainer.log_every_n_steps": (int, 1, True, None),
    "trainer.val_every_n_steps": (int, 0, True, None),
    "trainer.divergence_threshold": (float, 0.0, False, None),
    "logging.embedding_samples": (int, 1, True, None),
    "seed": (int, 0, True, None),
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("32", "bf16")


def check_config(cfg: DictConfig) -> None:
    """Raise a UserError listing every bad value in cfg, each with its fix."""
    problems = check_numbers(cfg, NUMBERS)
    device = str(cfg.trainer.device)
    if not (device in DEVICES or device.startswith("cuda:")):
        problems.append(f"trainer.device={device} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if str(cfg.trainer.precision) not in PRECISIONS:
        problems.append(f"trainer.precision={cfg.trainer.precision} is not one of {', '.join(PRECISIONS)}")
    if cfg.objective.mode not in ("max", "min"):
        problems.append(f"objective.mode={cfg.objective.mode} must be max or min")
    objectives = list(cfg.objective.get("metrics") or [])
    for i, o in enumerate(objectives):
        if not OmegaConf.is_dict(o) or set(o) != {"metric", "mode"} or o.mode not in ("max", "min"):
            problems.append(f"objective.metrics[{i}]={o} must be {{metric: <name>, mode: max|min}}")
    if (
        objectives
        and not problems
        and (objectives[0].metric, objectives[0].mode)
        != (
            cfg.objective.metric,
            cfg.objective.mode,
        )
    ):
        problems.append(
            f"objective.metrics[0] ({objectives[0].metric}, {objectives[0].mode}) must be objective.metric and "
            f"objective.mode ({cfg.objective.metric}, {cfg.objective.mode}): the first objective picks the best epoch"
        )
    if problems:
        raise UserError(
            "Bad config value: " + "; ".join(problems) + ". Fix the override on the command line "
            "(or the YAML file under conf/) and run again."
        )


def check_numbers(cfg: DictConfig, table: dict, prefix: str = "") -> list[str]:
    """What is wrong with the numbers `table` names in cfg: type, finiteness, range (one phrase each)."""
    problems = []
    for key, (kind, low, inclusive, high) in table.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        name = prefix + key
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (kind is int and math.isfinite(value) and not float(value).is_integer()):
            problems.append(f"{name}={value!r} must be {'an integer' if kind is int else 'a number'}")
        elif not math.isfinite(value):  # nan and inf compare False with everything: say so before the range
            problems.append(f"{name}={value} must be a finite number")
        elif value < low or (value == low and not inclusive):
            problems.append(f"{name}={value} must be {'at least' if inclusive else 'greater than'} {low}")
        elif high is not None and value > high:
            problems.append(f"{name}={value} must be at most {high}")
    return problems


def pick_device(name: str) -> torch.device:
    """The torch.device for trainer.device; `auto` takes cuda, then mps, then cpu."""
    import torch  # torch takes seconds to import: config.py is read by torch-free commands too

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }[name.split(":")[0]]
    if not available:
        raise UserError(
            f"trainer.device={name} is not available on this machine (torch {torch.__version__} "
            f"sees no {name.split(':')[0]} device): use trainer.device=auto or trainer.device=cpu."
        )
    return torch.device(name)
