"""One training job: build the components from the config, train, test, record, return the objective.

`main` is what `src/train.py` calls for every run and every trial of a sweep. It turns the ways a job
can end into what the caller needs: a user's mistake is one paragraph and exit status 2 (or, inside a
sweep, a failed trial that does not stop the sweep); a diverged run is a failed trial (NaN objective).
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashionlab.config import UserError, check_config, pick_device

log = logging.getLogger(__name__)

# Config sections that say where and how to run, not what is trained: left out of HPARAMS and compare.
NOT_HPARAMS = {"paths", "logging", "resume", "objective", "data.root", "data.debian_dir", "data.num_workers",
               "data.eval_batch_size", "data.in_memory", "data.split_seed", "model.num_classes", "scheduler.max_lr",
               "scheduler.cycle_momentum", "trainer.device", "trainer.progress_bar", "trainer.threads",
               "trainer.log_every_n_steps", "trainer.val_every_n_steps", "trainer.channels_last",
               "trainer.divergence_threshold", "trainer.deterministic"}


def main(cfg: DictConfig) -> float:
    """Run one job and return its objective; NaN marks a failed trial for the sweeper."""
    hc = HydraConfig.get()
    in_sweep = hc.mode == RunMode.MULTIRUN
    try:
        try:
            check_config(cfg)  # before torch is imported: a typo answers at once
            return train(cfg)
        except InstantiationException as e:  # a _target_ refused or given keys it does not take
            message = " ".join(str(e).split())
            raise UserError(f"{message} Check the _target_ and the keys of that config "
                            f"group (python src/train.py --cfg job shows them).") from None
    except UserError as e:
        if not in_sweep:
            print(f"fashionlab: error: {e}", file=sys.stderr)
            sys.exit(2)
        log.error(f"trial failed: {e}")
    except KeyboardInterrupt:  # a signal (training.Interrupted: checkpoint written, resume command printed)
        sys.exit(130)  # a sweep stops here too
    except Exception:
        if not in_sweep:
            raise
        log.exception("trial failed with an exception")
    _check_failure_budget(hc)
    return float("nan")


def _check_failure_budget(hc) -> None:
    """The search goes on after a failed trial until more than max_failure_rate of its trials have failed."""
    rate = OmegaConf.select(hc.sweeper, "max_failure_rate", default=None)
    n_trials = OmegaConf.select(hc.sweeper, "n_trials", default=None)
    if rate is None or n_trials is None:
        return
    failed = 0
    for f in Path(hc.sweep.dir).glob("*/metrics.json"):
        failed += json.loads(f.read_text()).get("status") != "completed"
    if failed > rate * n_trials:
        raise RuntimeError(f"{failed} of {n_trials} trials failed, more than hydra.sweeper.max_failure_rate="
                           f"{rate}: stopping the search.")


def train(cfg: DictConfig) -> float:
    import numpy as np
    import torch

    from fashionlab.training import Diverged, Interrupted, evaluate, new_progress

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    device = pick_device(str(cfg.trainer.device))
    trainer = instantiate(cfg.trainer)
    threads = _threads(trainer.threads, hc)
    if threads:
        torch.set_num_threads(threads)
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)
    if trainer.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    data, model, optimizer, scheduler = build(cfg, trainer, device)
    total_steps = trainer.max_epochs * data.steps_per_epoch()
    order = torch.Generator().manual_seed(cfg.seed)  # the data order: its own stream, saved in checkpoints
    progress = new_progress(total_steps, cfg.model._target_)

    if cfg.resume:
        scheduler, progress = _restore(cfg, hc, run_dir, model, optimizer, scheduler, order, total_steps)

    logger = instantiate(cfg.logging)
    logger.open(purge_step=progress["step"] + 1 if cfg.resume else None)
    objective = cfg.objective
    status, error = "failed", None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum, frame):
        trainer.stop_signal = signum
        log.warning(f"signal {signum}: stopping after this batch and writing a checkpoint")

    for s in previous:
        try:
            signal.signal(s, request_stop)
        except ValueError:  # not the main thread (some launchers): no clean stop, checkpoints still work
            pass
    start = time.time()
    try:
        if not cfg.resume:
            metric_tags = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"]
            logger.log_start(model, data, _hparams(cfg), metric_tags, _notes(cfg, run_dir))
        trainer.fit(model, data, optimizer, scheduler, logger, progress, order, run_dir / "checkpoints",
                    objective)
        test = evaluate(model, data, "test", trainer.autocast(device))
        logger.log_scalars(test, progress["step"])
        progress["metrics"].update(test)
        logger.log_features(model, data, progress["step"])
        status = "completed"
        log.info(f"test/loss {test['test/loss']:.4f}  test/acc {test['test/acc']:.4f}  ({run_dir})")
    except Diverged as e:
        status, error = "diverged", str(e)
        log.error(f"diverged: {e}")
    except Interrupted as e:
        status, error = "interrupted", str(e)
        cmd = f"python src/train.py resume={shlex.quote(str(run_dir))}"
        log.warning(f"interrupted by {e}; checkpoint written. Resume with:\n  {cmd}")
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        raise
    finally:
        for s, handler in previous.items():
            try:
                signal.signal(s, handler)
            except ValueError:
                pass
        if status != "interrupted":
            logger.log_end(ok=status == "completed")
        logger.close()
        _write_metrics(run_dir, cfg, hc, progress, status, error, start)

    if status != "completed":
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            print(f"fashionlab: error: {error}", file=sys.stderr)
            sys.exit(3)
        return float("nan")
    return progress["best"]["value"] if progress["best"] else float("nan")


def build(cfg: DictConfig, trainer, device):
    """Data (set up on `device`), model, optimizer and scheduler, as the config says."""
    import torch

    data = instantiate(cfg.data)
    data.setup(device)
    model = instantiate(cfg.model).to(device)
    if trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    total_steps = trainer.max_epochs * data.steps_per_epoch()
    try:  # torch checks the values itself (e.g. nesterov without momentum): say which group to fix
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=total_steps) if cfg.get("scheduler") else None
    except (TypeError, ValueError) as e:
        raise UserError(f"The optimizer or scheduler config is not valid: {e}. Fix the optimizer.* or "
                        f"scheduler.* override (python src/train.py --cfg job shows the values).") from None
    return data, model, optimizer, scheduler


def _restore(cfg, hc, run_dir, model, optimizer, scheduler, order, total_steps):
    """Load checkpoints/last.pt into the freshly built components; return the scheduler and the progress."""
    from fashionlab import checkpoint

    state = checkpoint.load(run_dir / "checkpoints" / "last.pt", model, cfg.model._target_)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    progress = state["progress"]
    if scheduler is not None and progress["total_steps"] == total_steps:
        scheduler.load_state_dict(state["scheduler"])
    elif scheduler is not None:  # e.g. a larger trainer.max_epochs: the schedule is re-planned to the new end
        log.warning(f"the learning-rate schedule was planned for {progress['total_steps']} steps and is now "
                    f"re-planned for {total_steps}; it continues from step {progress['step']}")
        scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=total_steps, last_epoch=progress["step"] - 1)
    checkpoint.set_rng_state(state["rng"], order)
    progress["total_steps"] = total_steps
    _save_config(run_dir, cfg, hc)  # only now: a resume that fails changes nothing in the run directory
    log.info(f"resuming {run_dir} at epoch {progress['epoch'] + 1}, step {progress['step']}")
    return scheduler, progress


def _threads(threads: int | None, hc) -> int | None:
    """trainer.threads, or, for N parallel jobs of the joblib launcher, the cores shared out among them."""
    if threads:
        return int(threads)
    n_jobs = OmegaConf.select(hc.launcher, "n_jobs", default=None) if hc.mode == RunMode.MULTIRUN else None
    if n_jobs and n_jobs != 1:
        cores = os.cpu_count() or 1
        return max(1, cores // (cores if n_jobs < 0 else n_jobs))
    return None


def _flatten(cfg: DictConfig) -> dict:
    """Dotted key -> value for what was trained (not where or how it was logged); `model` -> class name."""
    flat = {}

    def walk(node, prefix):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key in NOT_HPARAMS or k == "_partial_":
                continue
            if k == "_target_":
                flat[prefix.rstrip(".")] = v.rsplit(".", 1)[-1]
            elif isinstance(v, dict):
                walk(v, key + ".")
            else:
                flat[key] = v
    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def _hparams(cfg: DictConfig) -> dict:
    # TensorBoard takes bool, number or string: anything else (lists, None) is shown as text.
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in _flatten(cfg).items()}


def _notes(cfg: DictConfig, run_dir: Path) -> dict[str, str]:
    info = run_info()
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")
    versions = "\n".join(f"    {k}: {v}" for k, v in info.items())
    config = "\n".join("    " + line for line in OmegaConf.to_yaml(cfg).splitlines())
    return {"run/config": config, "run/environment": versions}


def run_info() -> dict[str, str]:
    """Package versions, command and git commit: what it takes to reproduce a run."""
    from importlib.metadata import version

    info = {"command": " ".join(shlex.quote(a) for a in sys.argv), "python": platform.python_version(),
            "platform": platform.platform()}
    for pkg in ("torch", "torchvision", "hydra-core", "omegaconf", "hydra-optuna-sweeper", "optuna", "tensorboard"):
        try:
            info[pkg] = version(pkg)
        except Exception:
            info[pkg] = "not installed"
    root = Path(__file__).resolve().parents[2]
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5)
        info["git_commit"] = commit.stdout.strip() + (" (dirty)" if dirty.stdout.strip() else "") \
            if commit.returncode == 0 else "not a git checkout"
    except (OSError, subprocess.TimeoutExpired):
        info["git_commit"] = "git not available"
    return info


def _save_config(run_dir: Path, cfg: DictConfig, hc) -> None:
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    OmegaConf.save(cfg, hydra_dir / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(hc.overrides.task)), hydra_dir / "overrides.yaml")


def _write_metrics(run_dir, cfg, hc, progress, status, error, start) -> None:
    import torch

    m = progress["metrics"]
    best = progress["best"]
    result = {
        "status": status,
        "error": error,
        "objective": {"metric": cfg.objective.metric, "mode": cfg.objective.mode,
                      "value": best["value"] if best and status == "completed" else None},
        "best": best,
        **{k: v for k, v in m.items() if k.split("/")[0] in ("train", "val", "test")},
        "epochs": progress["epoch"],
        "steps": progress["step"],
        "train_time_s": round(progress["train_time_s"], 3),
        "wall_time_s": round(time.time() - start, 3),
        "started_at": start,
        "ended_at": time.time(),
        "threads": torch.get_num_threads(),
        "images_per_s": round(progress["images"] / progress["train_time_s"]) if progress["train_time_s"] else None,
        "job": {"num": hc.job.get("num"), "overrides": list(hc.overrides.task)},
        "hparams": _flatten(cfg),
    }
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, run_dir / "metrics.json")
