"""Shared helpers: tiny Fashion-MNIST-format IDX files, and running src/train.py as a user would."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx_gz(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Gzipped IDX files in Fashion-MNIST's format (as the Debian package ships them): learnable templates."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, 28, 28))
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.clip(templates[labels] + rng.normal(0, 40, (n, 28, 28)), 0, 255).astype(np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return folder


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    return write_idx_gz(tmp_path_factory.mktemp("debian") / "fashion-mnist")


def train(*args: str, tmp: Path, timeout: float = 120, check: bool = True, env: dict | None = None,
          script: str = "src/train.py") -> subprocess.CompletedProcess:
    """Run `python src/train.py ARGS` with its outputs under tmp; assert success unless check=False."""
    cmd = [sys.executable, str(ROOT / script), *args]
    if script == "src/train.py":
        cmd += [f"paths.output_dir={tmp}/outputs", f"paths.multirun_dir={tmp}/multirun"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    if check:
        assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("metrics.json"))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# A fast, offline configuration: synthetic data, one epoch, no progress bar.
SMOKE = ("experiment=smoke",)
