"""Evaluate a checkpoint on its own (`python src/eval.py ckpt=... [data.root=...]`): find it, rebuild its run's
model and data from the run's saved config (with the overrides given of its keys), test it, write the views and
metrics.json of a run folder of its own.

`locate` and `model_for` run before Hydra starts (src/eval.py), so that a wrong `ckpt=` writes nothing at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import execution_whitelist, instantiate
from omegaconf import DictConfig, OmegaConf

from fashionlab.config import UserError
from fashionlab.files import write_atomic
from fashionlab.hydra_setup import EXECUTION_WHITELIST
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


def saved_config(run: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's config (.hydra/config.yaml) with `overrides` of its keys (data.root=..., trainer.device=...): a
    checkpoint made elsewhere is evaluated where its data sits now. A key the run's config does not have is refused."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert isinstance(cfg, DictConfig)
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise UserError(
                f"{override}: the run's config ({run}/.hydra/config.yaml) has no key {key}. Give keys it has, as "
                f"key=value, e.g. data.root=/where/the/data/is/now or trainer.device=cpu."
            )
    merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    assert isinstance(merged, DictConfig)
    return merged


_ABSENT = object()


def model_for(run: Path, ckpt: Path, overrides: Sequence[str] = ()) -> tuple[DictConfig, dict, Any]:
    """(the run's config, the checkpoint, its model with the checkpoint's weights): the model is built for the
    images and classes the checkpoint says it was trained on. Every way this can fail is one UserError."""
    from fashionlab import checkpoint  # torch: src/eval.py checks its arguments before it imports torch
    from fashionlab.models import build_model

    cfg = saved_config(run, overrides)
    state = checkpoint.read(ckpt)
    shape, classes = checkpoint.data_of(state)
    names = classes or [str(i) for i in range(cfg.model.get("num_classes") or 10)]
    try:
        with execution_whitelist(EXECUTION_WHITELIST):
            model = build_model(cfg.model, shape, names, f"the model saved in {run}")
    except InstantiationException as e:
        raise UserError(f"The model config saved in {run}/.hydra/config.yaml cannot be built ({e}).") from None
    checkpoint.check(state, ckpt, model, checkpoint.model_target(model))
    model.load_state_dict(state["model"])
    return cfg, state, model


def evaluate(cfg: DictConfig, out: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Evaluate cfg.ckpt on cfg.split; write out/metrics.json and the views; return the metrics."""
    import torch  # torch: src/eval.py checks its arguments before it imports torch

    from fashionlab.checkpoint import data_of
    from fashionlab.config import pick_device
    from fashionlab.metrics import predict

    if cfg.split not in SPLITS:
        raise UserError(f"split={cfg.split} is not one of {', '.join(SPLITS)}.")
    run, ckpt = locate(cfg.ckpt)
    saved, state, model = model_for(run, ckpt, overrides)
    device = pick_device(str(cfg.device if cfg.device is not None else saved.trainer.device))
    model = model.to(device, memory_format=torch.channels_last if saved.trainer.channels_last else None)
    with execution_whitelist(EXECUTION_WHITELIST):
        data = instantiate(saved.data)
    data.setup(device)
    (shape, classes), holds = data_of(state), f"{'x'.join(map(str, data.shape))} images of {len(data.classes)} classes"
    if tuple(data.shape) != shape or (classes is not None and len(classes) != len(data.classes)):
        raise UserError(
            f"The data of {run}'s config (data.root={OmegaConf.select(saved, 'data.root', default='-')}) holds "
            f"{holds}, but the checkpoint's model was trained on {'x'.join(map(str, shape))} images of "
            f"{len(classes or data.classes)} classes: point data.root=... at the data the run was trained on."
        )
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
        "overrides": list(overrides),
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
