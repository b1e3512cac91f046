"""TensorBoard views drawn here rather than by SummaryWriter: the image grid (torchvision's make_grid without
importing torchvision, which costs about 3 s per process), and the projector's files and the model graph,
cheaper and kept per process: every trial of a search writes the same sprite, pixel matrix and graph.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from torch.utils.tensorboard._embedding import get_embedding_info, make_sprite
from torch.utils.tensorboard._pytorch_graph import graph

from fashionlab.files import write_atomic

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """(N, C, H, W) images -> one (C, H', W') image of them in rows of `nrow`, as torchvision's make_grid draws
    them. Written here because importing torchvision costs about 3 s per process (it imports torch._dynamo)."""
    n, c, h, w = images.shape
    rows = -(-n // nrow)
    grid = torch.full(
        (c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value, dtype=images.dtype
    )
    for i, image in enumerate(images):
        top, left = (i // nrow) * (h + padding) + padding, (i % nrow) * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = image
    return grid


# What every run of a search writes alike, kept per process: the projector's sprite and pixel matrix (the same
# 100 training images in each run), and a traced graph (one per architecture). Bounded: cleared when full.
_SAME: dict[tuple, Any] = {}


def _kept(key: tuple, make: Callable[[], Any]) -> Any:
    if key not in _SAME:
        if len(_SAME) > 16:
            _SAME.clear()
        _SAME[key] = make()
    return _SAME[key]


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def add_embedding(
    w: SummaryWriter, mat: torch.Tensor, metadata: list[str], label_img: torch.Tensor, step: int, tag: str
) -> None:
    """SummaryWriter.add_embedding's files (PROJECTOR), the same bytes, cheaper: torch formats each number of
    the matrix in Python (0.1 s for the 100 x 784 pixels here), and encodes the same sprite in every run."""

    logdir = w.get_logdir()
    subdir = f"{str(step).zfill(5)}/{tag.replace('/', '_')}"  # where add_embedding puts it
    folder = Path(logdir) / subdir
    write_atomic(folder / "metadata.tsv", "".join(f"{m}\n" for m in metadata))  # as torch's make_tsv writes it

    def sprite() -> bytes:
        with tempfile.TemporaryDirectory() as made:  # torch's make_sprite writes its PNG into a folder
            make_sprite(label_img, made)
            return (Path(made) / "sprite.png").read_bytes()

    write_atomic(folder / "sprite.png", _kept(("sprite", _digest(label_img)), sprite))
    # repr: the shortest text that reads back exactly (what torch writes, number by number)
    tsv = _kept(("tsv", _digest(mat)), lambda: "".join("\t".join(map(repr, row)) + "\n" for row in mat.tolist()))
    write_atomic(folder / "tensors.tsv", tsv)
    config = getattr(w, "_projector_config", None) or ProjectorConfig()
    config.embeddings.extend([get_embedding_info(metadata, label_img, subdir, step, tag)])
    w._projector_config = config
    write_atomic(Path(logdir) / "projector_config.pbtxt", text_format.MessageToString(config))


def add_graph(w: SummaryWriter, model: torch.nn.Module, x: torch.Tensor) -> None:
    """SummaryWriter.add_graph, traced once per architecture and input shape in a process (0.07 s a trace)."""

    def trace() -> Any:
        with warnings.catch_warnings():  # torch.jit.trace warns that it is deprecated
            warnings.simplefilter("ignore")
            return graph(model, x)

    file_writer = w._get_file_writer()
    file_writer.add_graph(_kept(("graph", repr(model), tuple(x.shape), str(x.dtype)), trace))
