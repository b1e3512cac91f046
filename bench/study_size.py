"""What a big study costs each new trial: the same small search in a fresh study and in one of 2,000 trials.

    python bench/study_size.py [--finished 2000] [--trials 4]

The big study is a journal file written here as the sweeper writes one (the preset's search space, 3 of 4
trials pruned after epoch 1, the rest 4 epochs, a few heartbeat records each), then grown by `--trials`
1-epoch trials of the preset on synthetic data (basic launcher), as is a fresh study. Reported: wall time,
the seconds before the first trial starts, and the overhead per trial (from the first trial's start to the
last one's end, outside the training steps; read from each trial's metrics.json).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, preset_space, python  # noqa: E402


def write_study(path: Path, name: str, finished: int) -> int:
    """A journal of `finished` trials, written in one go (in memory first); returns its number of records."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import BaseJournalBackend
    from optuna.trial import TrialState

    from fashionlab.search.journal import HEARTBEAT_ATTR

    class Records(BaseJournalBackend):
        def __init__(self) -> None:
            self.logs: list[dict] = []

        def read_logs(self, log_number_from: int) -> list[dict]:
            return self.logs[log_number_from:]

        def append_logs(self, logs: list[dict]) -> None:
            self.logs.extend(logs)

    space = preset_space()
    backend, rng = Records(), random.Random(0)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, storage=JournalStorage(backend), direction="maximize")
    for n in range(finished):
        trial = study.ask(space)
        trial.set_user_attr("run_dir", f"{path.parent}/{n:03d}_synthetic")
        trial.set_user_attr("worker", "bench:1")
        epochs = 4 if n % 4 == 0 else 1
        value = 0.8
        for epoch in range(1, epochs + 1):
            study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
            value = min(0.92, value + rng.uniform(0, 0.04))
            trial.report(value, epoch)
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
        done = epochs == 4
        study.tell(trial, value if done else None, state=TrialState.COMPLETE if done else TrialState.PRUNED)
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in backend.logs))
    return len(backend.logs)


def grow(folder: Path, total: int, repo: Path = ROOT) -> dict:
    """Run the preset's search (of checkout `repo`) on synthetic data up to `total` trials; what it cost."""
    start = time.time()
    subprocess.run(
        [
            python(repo),
            str(repo / "src/train.py"),
            "-m",
            "hparams_search=lenet5_optuna",
            "data=synthetic",
            "trainer.max_epochs=1",
            "hydra/sweeper/pruner=none",
            f"hydra.sweeper.n_trials={total}",
            f"hydra.sweep.dir={folder}",
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    wall = time.time() - start
    runs = [json.loads(f.read_text()) for f in folder.glob("*/metrics.json")]
    first, last = min(r["started_at"] for r in runs), max(r["ended_at"] for r in runs)
    outside = last - first - sum(r["train_time_s"] for r in runs)
    return {"wall_s": wall, "first_trial_s": first - start, "overhead_s": outside / len(runs), "trials": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        fresh, big = Path(d) / "fresh", Path(d) / "big"
        big.mkdir()
        records = write_study(big / "optuna.journal", "lenet5_optuna", args.finished)
        size = (big / "optuna.journal").stat().st_size
        a = grow(fresh, args.trials)
        b = grow(big, args.finished + args.trials)
    print(f"journal of {args.finished} trials: {records:,} records, {size / 1e6:.1f} MB")
    for label, r in (("fresh study", a), (f"{args.finished} finished trials", b)):
        print(
            f"{label}: {r['trials']} new trials, wall {r['wall_s']:.1f} s, first trial after "
            f"{r['first_trial_s']:.1f} s, overhead {r['overhead_s']:.2f} s per trial"
        )
    print(f"overhead ratio (big / fresh): {b['overhead_s'] / a['overhead_s']:.2f}x")


if __name__ == "__main__":
    main()
