"""What the benchmarks share: the project root, the interpreter that runs another checkout, and the preset
search's space read from conf/hparams_search/ (never copied by hand)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def python(repo: Path) -> str:
    """This venv's interpreter, without this checkout on its path for another checkout: `pip install -e .` puts
    src/ on sys.path, and two copies of the sweeper plugin would register the same config name. A venv that
    reads this venv's packages but not its .pth files (made once in /tmp) runs the other checkout."""
    if repo == ROOT:
        return sys.executable
    venv = Path(tempfile.gettempdir()) / "fashionlab-baseline-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run(
            [sys.executable.replace(str(ROOT / ".venv"), sys.base_prefix), "-m", "venv", str(venv)], check=True
        )
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "fashionlab-venv.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    return str(venv / "bin" / "python")


def baseline_checkout(commit: str) -> Path:
    """A git worktree of an earlier commit in /tmp (made once): the code a benchmark compares with."""
    folder = Path(tempfile.gettempdir()) / f"fashionlab-{commit}"
    if not (folder / "src" / "train.py").is_file():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), commit],
            check=True,
            capture_output=True,
        )
    return folder


def preset_space(preset: str = "lenet5_optuna") -> dict:
    """The search space of conf/hparams_search/<preset>.yaml, as the sweeper parses it (Optuna distributions)."""
    from omegaconf import OmegaConf

    from fashionlab.search.hydra_internals import search_space

    params = OmegaConf.load(ROOT / "conf" / "hparams_search" / f"{preset}.yaml").hydra.sweeper.params
    space, _, _ = search_space(params, [])
    return space
