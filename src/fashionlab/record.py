"""What a run leaves behind: metrics.json, run_info.json, its HPARAMS values and TEXT notes.

Hyperparameters are what the run chose, nothing else: the config group choices, the command-line
overrides and, in a search, the searched parameters (first). The keys that say where or how a run goes
rather than what it trains are one list in conf/train.yaml (`hydra.job.config.override_dirname.exclude_keys`),
which also keeps them out of run folder names. Every text that leaves the process goes through
`redact`, so a database password in a storage URL is never written or printed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fashionlab.progress import Progress
from fashionlab.status import Status

# `scheme://user:password@host` and `password=...` (a libpq keyword or URL query): the password becomes ***.
_URL_PASSWORD = re.compile(r"([a-zA-Z][\w+.-]*://[^/\s:@]*):[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)[^\s&]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`, anywhere in `text`."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", str(text)))


def _excluded(key: str, exclude: list[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in exclude)


def hparams(cfg: DictConfig, hc, searched: list[str] = ()) -> dict:
    """Dotted key -> value of what the run chose; the searched keys first, then group choices, then overrides."""
    exclude = list(hc.job.config.override_dirname.exclude_keys)
    choices = {
        k: v
        for k, v in reversed(list(hc.runtime.choices.items()))  # in defaults-list order
        if not k.startswith("hydra/") and v is not None
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
    """HPARAMS takes bool, number or string: anything else (lists, None) is shown as text; the status is a column."""
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in chosen.items()}
    return {**values, "status": str(status)}


def run_info() -> dict[str, str]:
    """Package versions, command and git commit: what it takes to reproduce a run."""
    from importlib.metadata import version

    info = {
        "command": redact(" ".join(shlex.quote(a) for a in sys.argv)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
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
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")
    versions = "\n".join(f"    {k}: {v}" for k, v in info.items())
    config = "\n".join("    " + line for line in redact(OmegaConf.to_yaml(cfg)).splitlines())
    return {"run/config": config, "run/environment": versions}


def save_config(run_dir: Path, cfg: DictConfig, hc) -> None:
    """.hydra/config.yaml and overrides.yaml, as Hydra writes them (resume= tells Hydra not to, until it may)."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    OmegaConf.save(cfg, hydra_dir / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(hc.overrides.task)), hydra_dir / "overrides.yaml")


def write_metrics(
    run_dir: Path,
    cfg: DictConfig,
    hc,
    progress: Progress,
    status: Status,
    error: str | None,
    start: float,
    chosen: dict,
    trial=None,
) -> None:
    """metrics.json: status, objective, final metrics, timing, what was chosen; atomically (never half-written)."""
    import torch

    best = progress.best
    result = {
        "status": str(status),
        "error": redact(error) if error else None,
        "objective": {
            "metric": cfg.objective.metric,
            "mode": cfg.objective.mode,
            "value": best.value if best and status.has_result else None,
        },
        "best": best.__dict__ if best else None,
        **{k: v for k, v in progress.metrics.items() if k.split("/")[0] in ("train", "val", "test")},
        "epochs": progress.epoch,
        "max_epochs": cfg.trainer.max_epochs,
        "steps": progress.step,
        "train_time_s": round(progress.train_time_s, 3),
        "wall_time_s": round(time.time() - start, 3),
        "started_at": start,
        "ended_at": time.time(),
        "threads": torch.get_num_threads(),
        "images_per_s": round(progress.images_per_s) if progress.images_per_s else None,
        "job": {"num": hc.job.get("num"), "overrides": [redact(o) for o in hc.overrides.task]},
        "hparams": chosen,
    }
    if trial is not None:
        result.update(study=trial.study_name, trial=trial.number)
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, run_dir / "metrics.json")
