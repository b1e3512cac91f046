"""Train a classifier; every run writes its own TensorBoard log directory.

python src/train.py                                   # LeNet-5 on Fashion-MNIST, outputs/<date>/<time>/
python src/train.py optimizer.lr=0.01 trainer.max_epochs=5 data.batch_size=128
python src/train.py model=mlp optimizer=adam
python src/train.py -m optimizer.lr=0.1,0.01,0.001 model=lenet5,mlp
python src/train.py -m hparams_search=lenet5_optuna
python src/train.py resume=outputs/2026-11-29/12-00-00 trainer.max_epochs=20
tensorboard --logdir outputs
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # works from a fresh clone before `pip install -e .`
os.environ.setdefault("FASHIONLAB_ROOT", str(ROOT))

import hydra
from omegaconf import DictConfig

from fashionlab.hydra_setup import EXECUTION_WHITELIST, prepare_argv, register_resolvers
from fashionlab.status import Outcome

register_resolvers()


@hydra.main(config_path="../conf", config_name="train", execution_whitelist=EXECUTION_WHITELIST)
def main(cfg: DictConfig) -> Outcome:
    from fashionlab.run import main as run_job  # torch is imported here, so --help stays fast

    return run_job(cfg)


if __name__ == "__main__":
    sys.argv = prepare_argv(sys.argv)
    main()
