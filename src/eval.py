"""Evaluate a checkpoint: its test (or validation) figures, per class, and the TensorBoard views of them.

python src/eval.py ckpt=outputs/2026-12-01/12-00-00                       # a run: the epoch it chose (best.pt)
python src/eval.py ckpt=outputs/2026-12-01/12-00-00/checkpoints/last.pt  # one checkpoint
python src/eval.py ckpt=multirun/lenet5_optuna                           # a study: its best trial
python src/eval.py ckpt=outputs/2026-12-01/12-00-00 split=val
tensorboard --logdir outputs/eval
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # works from a fresh clone before `pip install -e .`
os.environ.setdefault("FASHIONLAB_ROOT", str(ROOT))

import hydra
from omegaconf import DictConfig

from fashionlab.config import UserError
from fashionlab.hydra_setup import EXECUTION_WHITELIST, register_resolvers
from fashionlab.status import fail

register_resolvers()


@hydra.main(config_path="../conf", config_name="eval", execution_whitelist=EXECUTION_WHITELIST)
def main(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    from fashionlab.evaluate import evaluate, report

    try:
        result = evaluate(cfg, Path(HydraConfig.get().runtime.output_dir))
    except UserError as e:
        fail(str(e))
    print(report(result))
    return result


def check_ckpt(argv: list[str]) -> None:
    """A split= that is not one, a ckpt= that is missing, not a run, or of another model: one paragraph and exit 2,
    before anything is written."""
    from fashionlab.evaluate import SPLITS, check, locate

    splits = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("split=")]
    if splits and splits[-1] not in SPLITS:
        fail(
            f"split={splits[-1]} is not one of {', '.join(SPLITS)}: evaluate on split=test (the default) or split=val."
        )
    given = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("ckpt=")]
    if not given:
        return  # Hydra says that ckpt is missing (or --help, --cfg)
    try:
        check(*locate(given[-1]))
    except UserError as e:
        fail(str(e))


if __name__ == "__main__":
    check_ckpt(sys.argv)
    main()
