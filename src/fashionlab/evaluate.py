"""Evaluate a checkpoint on its own (`python src/eval.py ckpt=...`): find it, rebuild its run's model and data
from the run's saved config, test it, write the views and metrics.json of a run folder of its own.

`locate` and `check` run before Hydra starts (src/eval.py), so that a wrong `ckpt=` writes nothing at all.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fashionlab.config import UserError
from fashionlab.files import write_atomic
from fashionlab.runs import load_runs, most_confused, ranked
from fashionlab.status import Status

log = logging.getLogger(__name__)
SPLITS = ("test", "val")


def locate(ckpt: str) -> tuple[Path, Path]:
    """(run folder, checkpoint file) for `ckpt=`: a run folder (its best.pt), a .pt file inside a run folder, or a
    folder of runs (a study, a grid: its best completed run, by the objective)."""
    path = Path(ckpt).expanduser().resolve()
    if path.is_file():
        run = path.parent.parent  # <run>/checkpoints/<name>.pt
        if not (run / ".hydra" / "config.yaml").is_file():
            raise UserError(
                f"ckpt={ckpt} is not inside a fashionlab run folder (<run>/checkpoints/*.pt beside "
                f"<run>/.hydra/config.yaml, which says how to rebuild its model): pass a run folder or a checkpoint "
                f"in one."
            )
        return run, path
    if not path.is_dir():
        raise UserError(
            f"ckpt={ckpt}: there is no such file or folder. Pass a run folder (outputs/<date>/<time>), a checkpoint "
            f"in one (.../checkpoints/best.pt), or a study folder (multirun/<study>)."
        )
    if (path / ".hydra" / "config.yaml").is_file():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path, path / "checkpoints" / name
        raise UserError(
            f"ckpt={ckpt}: the run has no checkpoint (checkpoints/best.pt): it stopped before its first epoch ended."
        )
    completed = [r for r in ranked(load_runs(path)) if r["status"] == Status.COMPLETED]
    if not completed:
        raise UserError(
            f"ckpt={ckpt} is not a run folder (no .hydra/config.yaml) and holds no completed run (no metrics.json "
            f"with status completed): pass a run folder, a checkpoint, or a study with a completed trial."
        )
    return locate(str(completed[0]["dir"]))


def saved_config(run: Path) -> DictConfig:
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert isinstance(cfg, DictConfig)
    return cfg


def check(run: Path, ckpt: Path) -> None:
    """The checkpoint loads (weights_only) into the model the run's config builds: else one UserError."""
    from hydra.errors import InstantiationException
    from hydra.utils import execution_whitelist, instantiate

    from fashionlab import checkpoint
    from fashionlab.hydra_setup import EXECUTION_WHITELIST

    try:
        with execution_whitelist(EXECUTION_WHITELIST):
            model = instantiate(saved_config(run).model)
    except InstantiationException as e:
        raise UserError(f"The model config saved in {run}/.hydra/config.yaml cannot be built ({e}).") from None
    checkpoint.load(ckpt, model, checkpoint.model_target(model))


def evaluate(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Evaluate cfg.ckpt on cfg.split; write out/metrics.json and the views; return the metrics."""
    import torch
    from hydra.utils import instantiate

    from fashionlab import checkpoint
    from fashionlab.config import pick_device
    from fashionlab.metrics import predict

    if cfg.split not in SPLITS:
        raise UserError(f"split={cfg.split} is not one of {', '.join(SPLITS)}.")
    run, ckpt = locate(cfg.ckpt)
    saved = saved_config(run)
    device = pick_device(str(cfg.device))
    model = instantiate(saved.model)
    state = checkpoint.load(ckpt, model, checkpoint.model_target(model))
    model.load_state_dict(state["model"])
    model = model.to(device, memory_format=torch.channels_last if saved.trainer.channels_last else None)
    data = instantiate(saved.data)
    data.setup(device)
    autocast: Any = nullcontext  # the run's own precision, so that the figures are the run's own
    if str(saved.trainer.precision) == "bf16":
        autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16)
    predictions = predict(model, data, cfg.split, autocast)
    metrics = predictions.metrics()
    epoch = state["progress"]["epoch"]
    logger = instantiate(cfg.logging)
    logger.open()
    logger.log_scalars(metrics, state["progress"]["step"])
    logger.log_evaluation(predictions, data, state["progress"]["step"], epoch)
    logger.close()
    result = {
        "status": str(Status.COMPLETED),
        "checkpoint": str(ckpt),
        "run": str(run),
        "epoch": epoch,
        "split": cfg.split,
        **metrics,
        f"{cfg.split}/confusion": {"classes": list(data.classes), "counts": predictions.confusion.tolist()},
    }
    write_atomic(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def report(result: dict[str, Any]) -> str:
    """The figures as a user reads them: overall, per class, and the classes confused most."""
    split = result["split"]
    lines = [
        f"{result['checkpoint']} (epoch {result['epoch']}) on the {split} split: {split}/acc "
        f"{result[f'{split}/acc']:.4f}  {split}/loss {result[f'{split}/loss']:.4f}"
    ]
    confusion = result[f"{split}/confusion"]
    for i, name in enumerate(confusion["classes"]):
        row = confusion["counts"][i]
        lines.append(f"  {name:<12} {row[i] / max(1, sum(row)):.4f}  ({row[i]} of {sum(row)})")
    pair = most_confused(confusion)
    if pair:
        lines.append(f"most confused: {pair}")
    return "\n".join(lines)
