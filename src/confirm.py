"""Confirm a search's winners: train its best trials again with new seeds, then rank them by their mean.

python src/confirm.py multirun/lenet5_optuna                       # top 3 trials x 3 new seeds
python src/confirm.py multirun/lenet5_optuna --top 5 --seeds 2
python src/confirm.py multirun/lenet5_optuna hydra/launcher=joblib hydra.launcher.n_jobs=2
make confirm DIR=multirun/lenet5_optuna

Runs the study's own command again (read from DIR/multirun.yaml: the same config, storage and launcher) with
hydra.sweeper.confirm.only=true: no new trial of the search starts; the top trials' confirmation runs go to
DIR/confirm/<trial>/seed=<s>/. Started again, it trains only what is missing. The leaderboard then ranks the
confirmed trials by their mean and says whether the best can be told apart from the runner-up.
"""

import argparse
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from omegaconf import OmegaConf  # noqa: E402

# Overrides that confirm.py sets itself, dropped from the study's saved command.
OWN = ("hydra.sweeper.confirm.", "hydra.sweep.dir=")


def train_args(folder: Path, top: int, seeds: int, extra: list[str]) -> list[str]:
    """The arguments of src/train.py that confirm the study in `folder` (its multirun.yaml says how it ran)."""
    saved = folder / "multirun.yaml"
    if not saved.is_file():
        raise SystemExit(
            f"confirm: {folder} is not a search's folder (no multirun.yaml): pass the folder a search wrote, e.g. "
            f"multirun/lenet5_optuna (`python src/train.py -m hparams_search=lenet5_optuna` makes it)."
        )
    hydra = OmegaConf.load(saved).hydra
    if "confirm" not in hydra.sweeper:
        raise SystemExit(
            f"confirm: {folder} was not searched by the project's sweeper (hydra/sweeper=fashionlab_optuna, as in "
            f"hparams_search=lenet5_optuna): a grid of the basic sweeper has no study to confirm. Repeat its runs "
            f"with seeds instead, e.g. `python src/train.py -m seed=1,2,3 <its overrides>`."
        )
    given = {o.split("=", 1)[0] for o in extra}  # an override given here replaces the saved one
    saved_args = [
        o
        for o in [*hydra.overrides.task, *hydra.overrides.hydra]
        if not o.startswith(OWN) and o.split("=", 1)[0] not in given
    ]
    return [
        "-m",
        *saved_args,
        f"hydra.sweep.dir={folder.resolve()}",
        f"hydra.sweeper.confirm.top_k={top}",
        f"hydra.sweeper.confirm.seeds={seeds}",
        "hydra.sweeper.confirm.only=true",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the search's folder (hydra.sweep.dir), e.g. multirun/lenet5_optuna")
    parser.add_argument("--top", type=int, default=3, help="how many of the best completed trials (default 3)")
    parser.add_argument("--seeds", type=int, default=3, help="new seeds per trial (default 3)")
    parser.add_argument("overrides", nargs="*", help="more overrides, e.g. hydra/launcher=joblib")
    args = parser.parse_args()
    script = str(ROOT / "src" / "train.py")
    sys.argv = [script, *train_args(args.dir, args.top, args.seeds, args.overrides)]
    runpy.run_path(script, run_name="__main__")  # as `python src/train.py ...`: Hydra finds conf/ from the file


if __name__ == "__main__":
    main()
