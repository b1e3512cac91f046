"""Checkpoints: written atomically, read with weights_only=True, checked against the model before use.

A checkpoint holds everything a resumed run needs to continue the same sequence: model, optimizer,
scheduler, progress counters, the best metric, and the RNG states (torch, numpy, python, data order).
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashionlab.config import UserError
from fashionlab.files import commit
from fashionlab.run_state import RunState

log = logging.getLogger(__name__)

FORMAT = 1


def model_target(model: torch.nn.Module) -> str:
    """The model's class as a config names it (`fashionlab.models.LeNet5`): checkpoints are checked against it."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def rng_state(data_order: torch.Generator) -> dict:
    # weights_only=True refuses numpy arrays: keep numpy's state as a tensor and plain ints.
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
        "data_order": data_order.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, data_order: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    data_order.set_state(state["data_order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict) -> None:
    """Write atomically (files.commit): a kill at any moment leaves the old or the new file, whole."""
    commit(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def copy(src: Path, dst: Path) -> None:
    """Atomically make dst a copy of src (best.pt from the last.pt just written)."""
    commit(dst, lambda tmp: shutil.copyfile(src, tmp))


def save_trainer(trainer: Any, name: str, order_state: torch.Tensor | None = None) -> None:
    """The trainer's checkpoint `name` (last.pt): everything `restore_trainer` needs to continue the same sequence.
    `order_state`: the data order at the start of the epoch, for a checkpoint in the middle of one."""
    trainer.logger.flush()  # first: events the checkpoint covers must be on disk before it, or a SIGKILL loses them
    rng = rng_state(trainer.order)
    if order_state is not None:
        rng["data_order"] = order_state
    save(
        trainer.checkpoint_dir / name,
        {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
            "progress": trainer.state.state_dict(),
            "rng": rng,
            "model_target": trainer.state.model_target,
            # What the model was built for: src/eval.py rebuilds it from this wherever the data sits then.
            "data": {"shape": list(trainer.data.shape), "classes": list(trainer.data.classes)},
        },
    )


def restore_trainer(trainer: Any, name: str = "last.pt") -> None:
    """Continue from a checkpoint: weights, optimizer, schedule, the run's state and every RNG stream."""
    state = load(trainer.checkpoint_dir / name, trainer.model, trainer.state.model_target)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    saved = RunState.from_state_dict(state["progress"])
    total_steps = trainer.state.total_steps
    if trainer.scheduler is not None and saved.total_steps == total_steps:
        trainer.scheduler.load_state_dict(state["scheduler"])
    elif trainer.scheduler is not None:  # e.g. a larger trainer.max_epochs: re-plan the schedule to the new end
        log.warning(
            f"the learning-rate schedule was planned for {saved.total_steps} steps and is now "
            f"re-planned for {total_steps}; it continues from step {saved.step}"
        )
        trainer.scheduler = trainer.make_scheduler(
            trainer.optimizer, total_steps=total_steps, last_epoch=saved.step - 1
        )
    set_rng_state(state["rng"], trainer.order)
    saved.total_steps = total_steps
    trainer.state = saved
    trainer.resumed = True


def load(path: Path, model: torch.nn.Module, model_target: str) -> dict:
    """Read a checkpoint for `model`; every way it can be wrong is a UserError that names the file."""
    state = read(path)
    check(state, path, model, model_target)
    return state


def read(path: Path) -> dict:
    """A checkpoint's contents (weights_only); a file that is not one is a UserError naming it."""
    if not path.is_file():
        raise UserError(
            f"There is no checkpoint {path}: the run was stopped before its first checkpoint or the "
            f"folder is not a fashionlab run. Start a new run instead of resuming this one."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same message
        raise UserError(
            f"The checkpoint {path} is truncated or corrupt and cannot be read ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). Nothing was changed; start a new run, or resume from "
            f"a copy of the run whose checkpoints/last.pt is intact."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a fashionlab checkpoint (format {FORMAT}): start a new run.")
    return state


def data_of(state: dict) -> tuple[tuple[int, int, int], list[str] | None]:
    """The image shape and classes the checkpoint's model was built for (checkpoints from before data sets said
    what they hold: Fashion-MNIST's 1x28x28, classes unknown)."""
    data = state.get("data") or {}
    return tuple(data.get("shape", (1, 28, 28))), data.get("classes")


def check(state: dict, path: Path, model: torch.nn.Module, model_target: str) -> None:
    """The checkpoint holds this model's class, with tensors of this model's shapes: else a UserError."""
    if state["model_target"] != model_target:
        raise UserError(
            f"The checkpoint {path} holds a {state['model_target']} but this config builds a "
            f"{model_target}: use the model settings the run was trained with (to resume: without changing `model=`)."
        )
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items()}
    if ours != theirs:
        diff = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise UserError(
            f"The checkpoint {path} does not fit this model: {', '.join(diff[:4])} differ in shape "
            f"(checkpoint {[theirs.get(k) for k in diff[:4]]}, model {[ours.get(k) for k in diff[:4]]}). "
            f"Resume with the model settings the run was started with."
        )
