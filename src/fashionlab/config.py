"""Checks of what the user asked for, made before any data is read or any file is written.

A mistake of the user is a `UserError`: `train.py` prints it as one paragraph and exits with status 2.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


# key -> (type, smallest allowed value, whether that value itself is allowed)
NUMBERS = {
    "optimizer.lr": (float, 0.0, False),
    "optimizer.weight_decay": (float, 0.0, True),
    "optimizer.momentum": (float, 0.0, True),
    "data.batch_size": (int, 1, True),
    "data.eval_batch_size": (int, 1, True),
    "data.val_size": (int, 1, True),
    "data.num_workers": (int, 0, True),
    "trainer.max_epochs": (int, 1, True),
    "trainer.log_every_n_steps": (int, 1, True),
    "trainer.val_every_n_steps": (int, 0, True),
    "logging.embedding_samples": (int, 1, True),
    "seed": (int, 0, True),
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("32", "bf16")


def check_config(cfg: DictConfig) -> None:
    """Raise a UserError listing every bad value in cfg, each with its fix."""
    problems = []
    for key, (kind, low, inclusive) in NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok_type = ok_type and float(value).is_integer()
        if not ok_type:
            problems.append(f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}")
        elif value < low or (value == low and not inclusive):
            problems.append(f"{key}={value} must be {'at least' if inclusive else 'greater than'} {low}")
    device = str(cfg.trainer.device)
    if not (device in DEVICES or device.startswith("cuda:")):
        problems.append(f"trainer.device={device} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if str(cfg.trainer.precision) not in PRECISIONS:
        problems.append(f"trainer.precision={cfg.trainer.precision} is not one of {', '.join(PRECISIONS)}")
    if cfg.objective.mode not in ("max", "min"):
        problems.append(f"objective.mode={cfg.objective.mode} must be max or min")
    if problems:
        raise UserError(
            "Bad config value: " + "; ".join(problems) + ". Fix the override on the command line "
            "(or the YAML file under conf/) and run again."
        )


def pick_device(name: str):
    """The torch.device for trainer.device; `auto` takes cuda, then mps, then cpu."""
    import torch

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
