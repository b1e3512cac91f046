"""What a run leaves behind: metrics.json, run_info.json, its HPARAMS values and TEXT notes.

Hyperparameters are what the run chose, nothing else: the config group choices, the command-line
overrides and, in a search, the searched parameters (first). The keys that say where or how a run goes
rather than what it trains are one list in conf/hydra/default.yaml (`hydra.job.config.override_dirname.
exclude_keys`), which also keeps them out of run folder names. Every text that leaves the process goes through
`files.redact`, so a database password in a storage URL is never written or printed. runs.py reads it back.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from fashionlab.files import DISK_FULL, disk_full, redact, write_atomic
from fashionlab.run_state import RunState
from fashionlab.runs import config_id
from fashionlab.search import confirms
from fashionlab.status import Outcome, Status


def _excluded(key: str, exclude: list[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in exclude)


def hparams(cfg: DictConfig, hc: DictConfig, searched: Sequence[str] = ()) -> dict:
    """Dotted key -> value of what the run chose; the searched keys first, then group choices, then overrides."""
    exclude = list(hc.job.config.override_dirname.exclude_keys)
    choices = {
        k: v
        for k, v in reversed(list(hc.runtime.choices.items()))  # in defaults-list order
        if k != "hydra" and not k.startswith("hydra/") and v is not None
    }
    keys = list(searched) + list(choices)
    for override in hc.overrides.task:
        keys.append(override.split("=", 1)[0].lstrip("+~"))
    chosen = {}
    for key in dict.fromkeys(keys):  # ordered, without repeats
        if _excluded(key, exclude):
            continue
        if key in choices:
            chosen[key] = choices[key]
        else:
            value = OmegaConf.select(cfg, key, default=None)
            value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            chosen[key] = redact(value) if isinstance(value, str) else value
    return chosen


def tensorboard_hparams(chosen: dict, status: Status) -> dict:
    """HPARAMS takes bool, number or string: anything else (lists, None) is shown as text. The status is a column,
    and so is `repeat_group`, the configuration's short name: runs that differ only by seed share it."""
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in chosen.items()}
    return {**values, "repeat_group": config_id(chosen), "status": str(status)}


def run_info() -> dict[str, str]:
    """Package versions, command and git commit: what it takes to reproduce a run."""
    info = {
        "command": redact(" ".join(shlex.quote(a) for a in sys.argv)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if os.environ.get("SLURM_JOB_ID"):  # which SLURM job ran it (scancel, sacct, its log)
        info["slurm_job"] = os.environ["SLURM_JOB_ID"]
    for pkg in ("torch", "torchvision", "hydra-core", "omegaconf", "hydra-optuna-sweeper", "optuna", "tensorboard"):
        try:
            info[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a record of versions must not stop a run
            info[pkg] = "not installed"
    root = Path(__file__).resolve().parents[2]
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            git + ["status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        )
        info["git_commit"] = (
            commit.stdout.strip() + (" (dirty)" if dirty.stdout.strip() else "")
            if commit.returncode == 0
            else "not a git checkout"
        )
    except (OSError, subprocess.TimeoutExpired):
        info["git_commit"] = "git not available"
    return info


def write_run_info(run_dir: Path, cfg: DictConfig) -> dict[str, str]:
    """run_info.json, and the TEXT tab's notes: the composed config and the environment."""
    info = run_info()
    write_atomic(run_dir / "run_info.json", json.dumps(info, indent=2) + "\n")
    versions = "\n".join(f"    {k}: {v}" for k, v in info.items())
    config = "\n".join("    " + line for line in redact(OmegaConf.to_yaml(cfg)).splitlines())
    return {"run/config": config, "run/environment": versions}


def save_config(run_dir: Path, cfg: DictConfig, hc: DictConfig) -> None:
    """.hydra/config.yaml and overrides.yaml, as Hydra writes them (resume= tells Hydra not to, until it may)."""
    hydra_dir = run_dir / ".hydra"
    write_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomic(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(hc.overrides.task))))


def objectives(cfg: DictConfig) -> list[dict]:
    """objective.metrics as plain dicts ({metric, mode}); [] for a single objective."""
    items = OmegaConf.to_container(OmegaConf.create(list(cfg.objective.get("metrics") or [])), resolve=True)
    return [dict(o) for o in cast(list, items)]


def write_metrics(
    run_dir: Path,
    cfg: DictConfig,
    hc: DictConfig,
    state: RunState,
    outcome: Outcome,
    start: float,
    chosen: dict,
    trial: Any = None,
    classes: Sequence[str] = (),
) -> None:
    """metrics.json: status, objective, final metrics, timing, what was chosen; atomically (never half-written).

    `trial` is the search's trial (search.Trial), None outside a search.
    """
    import torch  # the thread count, in a job that has torch loaded; the sweeper reads this module without it

    best = state.best
    result = {
        "status": str(outcome.status),
        "error": redact(outcome.error) if outcome.error else None,
        "objective": {
            "metric": cfg.objective.metric,
            "mode": cfg.objective.mode,
            "value": best.value if best and outcome.status.has_result else None,
            "curve": {int(e): v for e, v in state.curve.items()},  # after each epoch (pruned trials too)
            # A multi-objective run's objectives (objective.metrics), each with its mode and value:
            "objectives": [{**o, "value": v} for o, v in zip(objectives(cfg), outcome.values)] or None,
        },
        "best": best.__dict__ if best else None,
        **{k: v for k, v in state.metrics.items() if k.split("/")[0] in ("train", "val", "test", "model")},
        # The test figures are those of the weights the objective chose (best.pt), from this epoch:
        "tested_epoch": state.tested_epoch,
        "test/confusion": {"classes": list(classes), "counts": state.confusion} if state.confusion else None,
        "epochs": state.epoch,
        "max_epochs": cfg.trainer.max_epochs,
        "steps": state.step,
        "train_time_s": round(state.train_time_s, 3),
        "wall_time_s": round(time.time() - start, 3),
        "started_at": start,
        "ended_at": time.time(),
        "threads": torch.get_num_threads(),
        "images_per_s": round(state.images_per_s) if state.images_per_s else None,
        "job": {"num": hc.job.get("num"), "overrides": [redact(o) for o in hc.overrides.task]},
        "hparams": chosen,
        "seed": cfg.seed,
        "split_seed": OmegaConf.select(cfg, "data.split_seed", default=None),
    }
    repeats = confirms(hc)
    if repeats is not None:  # a confirmation run of a search's trial (the sweeper's hydra.sweeper.confirm)
        result["confirms"] = repeats
    if trial is not None:
        result.update(study=trial.study_name, trial=trial.number)
    try:
        write_atomic(run_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
    except OSError as e:
        if e.errno in DISK_FULL:
            raise disk_full(run_dir, e) from None
        raise
