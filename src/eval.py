"""Evaluate a checkpoint: its test (or validation) figures, per class, and the TensorBoard views of them.

python src/eval.py ckpt=outputs/2026-12-01/12-00-00                       # a run: the epoch it chose (best.pt)
python src/eval.py ckpt=outputs/2026-12-01/12-00-00/checkpoints/last.pt  # one checkpoint
python src/eval.py ckpt=multirun/lenet5_optuna                           # a study: its best trial
python src/eval.py ckpt=outputs/2026-12-01/12-00-00 split=val
python src/eval.py ckpt=runs/from-the-cluster data.root=$HOME/data trainer.device=cpu   # keys of the run's own config
tensorboard --logdir outputs/eval

Every argument that is not one of conf/eval.yaml's own (ckpt, split, device, paths.*, logging.*, hydra.*, flags)
overrides a key of the run's saved config.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # works from a fresh clone before `pip install -e .`
os.environ.setdefault("FASHIONLAB_ROOT", str(ROOT))

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fashionlab.config import UserError
from fashionlab.evaluate import SPLITS, evaluate, locate, model_for, report
from fashionlab.hydra_setup import EXECUTION_WHITELIST, register_resolvers
from fashionlab.status import fail

register_resolvers()


OWN = ("ckpt", "split", "device", "paths", "logging", "hydra")  # conf/eval.yaml's keys; the rest are the run's
RUN_OVERRIDES: list[str] = []  # overrides of the run's saved config (split_argv)


@hydra.main(config_path="../conf", config_name="eval", execution_whitelist=EXECUTION_WHITELIST)
def main(cfg: DictConfig) -> dict:
    try:
        result = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir), RUN_OVERRIDES)
    except UserError as e:
        fail(str(e))
    print(report(result))
    return result


def split_argv(argv: list[str]) -> list[str]:
    """Hydra's arguments; the overrides of the run's own keys go to RUN_OVERRIDES. Then a split= that is not one, or
    a ckpt= or override that cannot work (missing, not a run, another model, a key the run has not): one paragraph
    and exit 2, before anything is written."""
    own = [a for a in argv[1:] if a.startswith("-") or a.split("=", 1)[0].lstrip("+~").split(".")[0] in OWN]
    RUN_OVERRIDES[:] = [a for a in argv[1:] if a not in own]
    splits = [a.split("=", 1)[1] for a in own if a.startswith("split=")]
    if splits and splits[-1] not in SPLITS:
        fail(
            f"split={splits[-1]} is not one of {', '.join(SPLITS)}: evaluate on split=test (the default) or split=val."
        )
    given = [a.split("=", 1)[1] for a in own if a.startswith("ckpt=")]
    if given:  # else Hydra says that ckpt is missing (or --help, --cfg)
        try:
            model_for(*locate(given[-1]), RUN_OVERRIDES)
        except UserError as e:
            fail(str(e))
    return [argv[0], *own]


if __name__ == "__main__":
    sys.argv = split_argv(sys.argv)
    main()
