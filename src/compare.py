"""Leaderboard of the runs under a folder (a sweep, or all of outputs/), best first, and a plot beside it.

python src/compare.py multirun/2026-11-29/12-00-00
python src/compare.py outputs
make compare DIR=multirun/2026-11-29/12-00-00
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fashionlab.leaderboard.importance import importance  # noqa: E402
from fashionlab.leaderboard.plot import plot  # noqa: E402
from fashionlab.leaderboard.table import leaderboard  # noqa: E402
from fashionlab.runs import load_runs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a run, a sweep, or a folder of runs (e.g. outputs)")
    parser.add_argument("--plot", type=Path, default=None, help="where to write the PNG (default: DIR/comparison.png)")
    args = parser.parse_args()
    if not args.dir.is_dir():
        print(
            f"compare: {args.dir} is not a folder: pass a sweep (multirun/<date>/<time>) or outputs.", file=sys.stderr
        )
        return 2
    runs = load_runs(args.dir)
    if not runs:
        print(
            f"compare: no runs under {args.dir} (no metrics.json): train first, e.g. "
            f"`python src/train.py -m optimizer.lr=0.1,0.01`, then pass its multirun/<date>/<time> folder.",
            file=sys.stderr,
        )
        return 1
    found = importance(runs)
    print(leaderboard(runs, found))
    out = args.plot or args.dir / "comparison.png"
    plot(runs, out, found)
    print(f"\n{len(runs)} runs; plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
