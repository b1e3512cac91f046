"""Checkpoints: written atomically, read with weights_only=True, checked against the model before use.

A checkpoint holds everything a resumed run needs to continue the same sequence: model, optimizer,
scheduler, progress counters, the best metric, and the RNG states (torch, numpy, python, data order).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fashionlab.config import UserError

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
    """Write to a temporary file, then rename: a kill at any moment leaves the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _commit(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def copy(src: Path, dst: Path) -> None:
    """Atomically make dst a copy of src (best.pt from the last.pt just written)."""
    _commit(dst, lambda tmp: shutil.copyfile(src, tmp))


def _commit(path: Path, write: Callable[[Path], object]) -> None:
    """write(tmp), sync, rename over path. A write that fails (a full disk) leaves no temporary file behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path, model: torch.nn.Module, model_target: str) -> dict:
    """Read a checkpoint for `model`; every way it can be wrong is a UserError that names the file."""
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
    return state
