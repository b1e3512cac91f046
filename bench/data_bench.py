# ruff: noqa: E501 - the report below is a Markdown template whose table rows are one line each
"""Data sets and models beyond Fashion-MNIST and LeNet-5, measured in one run; writes bench/DATA.md.

    make bench-data                  # or: python bench/data_bench.py [--baseline f27b4a3] [--repeats 3]

Each figure is a real `python src/train.py` run (a process of its own, its metrics.json read back):
- the default run (Fashion-MNIST, LeNet-5, 4 epochs, seed 0) with this checkout and the code before data sets
  said what they hold (`--baseline`, a git worktree in /tmp): test/acc (the same seed must give the same figure)
  and training images/s (median of `--repeats` runs each);
- scikit-learn's digits (real 8x8 images, experiment=digits): LeNet-5 and the MLP, test/acc and seconds;
- Fashion-MNIST with `model=resnet augment=crop_flip` (ResNet-20, 4 epochs): test/acc and seconds per epoch,
  beside LeNet-5's;
- CIFAR-shaped synthetic images (3x32x32, 10,000 of them, 1 epoch): training images/s of LeNet-5 and ResNet-20.
No CIFAR-10 figure: there is no CIFAR-10 on this machine, and this script quotes nothing it did not measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, baseline_checkout, python  # noqa: E402


def run(repo: Path, out: Path, *overrides: str) -> dict:
    """One `python src/train.py OVERRIDES` of checkout `repo` into `out`; its metrics.json, and its wall time."""
    start = time.time()
    proc = subprocess.run(
        [python(repo), str(repo / "src/train.py"), f"hydra.run.dir={out}", "trainer.progress_bar=false", *overrides],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "FASHIONLAB_ROOT": str(ROOT)},  # the same data/ folder
    )
    if proc.returncode != 0:
        raise SystemExit(f"{overrides} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    m["process_s"] = time.time() - start
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="f27b4a3", help="the commit before data sets said what they hold")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = baseline_checkout(args.baseline)
    r: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for label, repo in (("default_base", base), ("default", ROOT)):
            runs = [run(repo, tmp / f"{label}{i}") for i in range(args.repeats)]
            r[label] = {
                "test_acc": [m["test/acc"] for m in runs],
                "images_per_s": statistics.median(m["images_per_s"] for m in runs),
                "epoch_s": statistics.median(m["train_time_s"] / m["epochs"] for m in runs),
                "params": runs[0].get("model/params"),
            }
        for model in ("lenet5", "mlp"):
            m = run(ROOT, tmp / f"digits_{model}", "experiment=digits", f"model={model}", "logging.embedding=false")
            r[f"digits_{model}"] = {
                "test_acc": m["test/acc"],
                "process_s": m["process_s"],
                "train_time_s": m["train_time_s"],
                "params": m["model/params"],
            }
        m = run(ROOT, tmp / "resnet", "model=resnet", "augment=crop_flip")
        r["fashion_resnet"] = {
            "test_acc": m["test/acc"],
            "epoch_s": m["train_time_s"] / m["epochs"],
            "images_per_s": m["images_per_s"],
            "params": m["model/params"],
            "process_s": m["process_s"],
        }
        for model in ("lenet5", "resnet"):
            m = run(
                ROOT,
                tmp / f"cifar_{model}",
                "data=synthetic",
                "data.channels=3",
                "data.image_size=32",
                "data.num_train=10000",
                "data.val_size=1000",
                "trainer.max_epochs=1",
                f"model={model}",
                "logging.embedding=false",
            )
            r[f"cifar_shaped_{model}"] = {"images_per_s": m["images_per_s"], "params": m["model/params"]}
    (ROOT / "bench" / "data_results.json").write_text(json.dumps(r, indent=2) + "\n")
    write_report(r, args)
    print((ROOT / "bench" / "DATA.md").read_text())


def write_report(r: dict, args: argparse.Namespace) -> None:
    d, b = r["default"], r["default_base"]
    same = "the same" if d["test_acc"] == b["test_acc"] else "DIFFERENT"
    fr = r["fashion_resnet"]
    text = f"""# Data sets and models: one run of `make bench-data`

Measured on {time.strftime("%Y-%m-%d")} on {platform.machine()} ({os.cpu_count()} cores), `python bench/data_bench.py --baseline {args.baseline} --repeats {args.repeats}`.
Every figure is one `python src/train.py` run of its own; compare figures from one run only (machines of this kind differ 3x).

## The default run, before and after

| Fashion-MNIST, LeNet-5, 4 epochs, seed 0 | test/acc ({args.repeats} runs) | training images/s (median of {args.repeats}) |
|---|---|---|
| before ({args.baseline}: one 28x28 grayscale data set) | {", ".join(f"{a:.4f}" for a in b["test_acc"])} | {b["images_per_s"]:,.0f} |
| now (data sets say what they hold) | {", ".join(f"{a:.4f}" for a in d["test_acc"])} | {d["images_per_s"]:,.0f} ({d["images_per_s"] / b["images_per_s"]:.2f}x) |

The test accuracies are {same}: the same seed gives the same figures.

## scikit-learn's digits (real 8x8 images, `experiment=digits`, 20 epochs)

| model | parameters | test/acc (360 test images) | training time | whole process |
|---|---|---|---|---|
| LeNet-5 (padding 2) | {r["digits_lenet5"]["params"]:,.0f} | **{r["digits_lenet5"]["test_acc"]:.4f}** | {r["digits_lenet5"]["train_time_s"]:.1f} s | {r["digits_lenet5"]["process_s"]:.1f} s |
| MLP | {r["digits_mlp"]["params"]:,.0f} | **{r["digits_mlp"]["test_acc"]:.4f}** | {r["digits_mlp"]["train_time_s"]:.1f} s | {r["digits_mlp"]["process_s"]:.1f} s |

## Fashion-MNIST: ResNet-20 with crop and flip against LeNet-5 (4 epochs each)

| model | parameters | test/acc | seconds of training per epoch | training images/s |
|---|---|---|---|---|
| LeNet-5 (the default) | {d["params"]:,.0f} | {d["test_acc"][0]:.4f} | {d["epoch_s"]:.1f} | {d["images_per_s"]:,.0f} |
| ResNet-20, `augment=crop_flip` | {fr["params"]:,.0f} | {fr["test_acc"]:.4f} | {fr["epoch_s"]:.1f} ({fr["epoch_s"] / d["epoch_s"]:.0f}x) | {fr["images_per_s"]:,.0f} |

## CIFAR-shaped synthetic images (3x32x32, 10 classes, 10,000 training images, 1 epoch)

| model | parameters | training images/s |
|---|---|---|
| LeNet-5 | {r["cifar_shaped_lenet5"]["params"]:,.0f} | {r["cifar_shaped_lenet5"]["images_per_s"]:,.0f} |
| ResNet-20 | {r["cifar_shaped_resnet"]["params"]:,.0f} | {r["cifar_shaped_resnet"]["images_per_s"]:,.0f} |

No CIFAR-10 accuracy: this machine has no CIFAR-10 (and no internet to download it), so none is quoted.
"""
    (ROOT / "bench" / "DATA.md").write_text(text)


if __name__ == "__main__":
    main()
