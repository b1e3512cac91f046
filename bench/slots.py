"""How busy the slots of a parallel search are: a pruned search on synthetic data, 2 joblib slots.

    python bench/slots.py                      # this checkout
    python bench/slots.py --repo ../other      # another checkout of fashionlab (e.g. an older commit), same venv

Busy share = the sum of the trials' own job times (metrics.json: started_at..ended_at) / (2 x the span from the
first trial's start to the last one's end). A slot is idle while it waits for other trials of its batch, and
while a job starts (Hydra's set-up, building, data), which its own clock does not count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose src/train.py runs the search")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            str(args.repo / "src" / "train.py"),
            "-m",
            "experiment=smoke",
            "hparams_search=lenet5_optuna",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweeper.n_trials={args.trials}",
            "trainer.max_epochs=4",
            "data.num_train=4000",
            "logging.embedding=false",
            f"paths.multirun_dir={out}",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - start
        runs = [json.loads(f.read_text()) for f in Path(out).glob("lenet5_optuna/*/metrics.json")]
    busy = sum(r["ended_at"] - r["started_at"] for r in runs)
    span = max(r["ended_at"] for r in runs) - min(r["started_at"] for r in runs)
    print(
        f"{args.repo}: {len(runs)} trials, {sum(r['epochs'] for r in runs)} epochs, "
        f"{sum(r['status'] == 'pruned' for r in runs)} pruned; jobs {busy:.1f} s over a span of {span:.1f} s: "
        f"busy share {busy / (2 * span):.0%}; wall {wall:.1f} s"
    )


if __name__ == "__main__":
    main()
