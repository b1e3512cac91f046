"""Speed benchmark: the tutorial's training loop against this project's default training, in one run.

    make bench                       # or: python bench/bench.py [--reps 5]

(a) the tutorial's setup, re-implemented faithfully: batch 4, per-sample PIL -> ToTensor -> Normalize
    through a DataLoader with 2 workers, SGD lr 0.001 momentum 0.9, a full pass over the 10,000 test
    images every 1,000 batches. Timed over a fixed number of batches and one validation pass, then
    extrapolated to one epoch (15,000 batches, 15 validations).
(b) this project's default training (conf/train.yaml), epoch by epoch, with the test accuracy read
    after each epoch (untimed) to find the training time to reach 0.89.
Medians over --reps repetitions. Writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import execution_whitelist, instantiate  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from fashionlab.data import FashionMNIST, PerSampleDataset  # noqa: E402
from fashionlab.hydra_setup import EXECUTION_WHITELIST, register_resolvers  # noqa: E402
from fashionlab.metrics import evaluate  # noqa: E402
from fashionlab.models import LeNet5  # noqa: E402
from fashionlab.run import build  # noqa: E402

TARGET_ACC = 0.89


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def lenet5_train_flops() -> float:
    """FLOPs per training image: forward multiply-adds x 2, and backward about twice the forward."""
    macs = 24 * 24 * 6 * 25 + 8 * 8 * 16 * 150 + 256 * 120 + 120 * 84 + 84 * 10
    return 2 * macs * 3


def tutorial(train_x, train_y, test_x, test_y, batches: int) -> dict:
    """The tutorial's loop as written; returns its measured parts and the extrapolated epoch."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(PerSampleDataset(train_x, train_y), batch_size=4, shuffle=True, num_workers=2)
    val_loader = torch.utils.data.DataLoader(
        PerSampleDataset(test_x, test_y), batch_size=4, shuffle=False, num_workers=2
    )
    net = LeNet5()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    it = iter(loader)
    next(it)  # worker start-up is not part of the steady state
    t = time.perf_counter()
    running = 0.0
    for _ in range(batches):
        inputs, labels = next(it)
        optimizer.zero_grad()
        loss = F.cross_entropy(net(inputs), labels)
        loss.backward()
        optimizer.step()
        running += loss.item()
    train_s = time.perf_counter() - t
    del it
    t = time.perf_counter()
    net.train(False)
    vloss = 0.0
    for vinputs, vlabels in val_loader:
        vloss += F.cross_entropy(net(vinputs), vlabels).item()
    val_s = time.perf_counter() - t
    per_epoch = len(train_x) // 4
    epoch_s = train_s * per_epoch / batches + (per_epoch // 1000) * val_s
    return {"images_per_s": batches * 4 / train_s, "val_pass_s": val_s, "epoch_s": epoch_s}


def timed(method, total: list):
    """`method`, adding the seconds each call takes to total[0]."""

    def call(*args, **kwargs):
        t = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - t

    return call


def default_training(tmp: Path):
    """conf/train.yaml's defaults, built as src/train.py builds them, logging to `tmp`."""
    with initialize_config_dir(str(ROOT / "conf")), execution_whitelist(EXECUTION_WHITELIST):
        cfg = compose("train", overrides=["trainer.state_bar=false", f"paths.data_dir={ROOT}/data"])
        with open_dict(cfg):
            cfg.logging.log_dir = str(tmp)
        trainer = instantiate(cfg.trainer)
        trainer.prepare(cfg.seed)
        build(cfg, trainer, tmp)
    trainer.logger.open()
    return trainer


def project_default(tmp: Path) -> dict:
    """The default training, epoch by epoch; test accuracy read after each epoch."""
    trainer = default_training(tmp)
    epochs = trainer.max_epochs
    # What the loop spends on bookkeeping: scalar logging and the end-of-epoch checkpoint (which flushes the log).
    bookkeeping = [0.0]
    trainer.logger.log_scalars = timed(trainer.logger.log_scalars, bookkeeping)
    trainer.save = timed(trainer.save, bookkeeping)
    # The weight and gradient histograms the logger writes after every epoch (HISTOGRAMS, DISTRIBUTIONS).
    histograms = [0.0]
    trainer.logger.on_epoch_end = timed(trainer.logger.on_epoch_end, histograms)
    curve = []
    for epoch in range(1, epochs + 1):
        trainer.max_epochs = epoch
        trainer.fit()
        p = trainer.state
        curve.append((p.train_time_s, p.epoch_time_s, evaluate(trainer.model, trainer.data, "test")["test/acc"]))
    trainer.logger.close()
    p = trainer.state
    reach = next((train_s for train_s, _, acc in curve if acc >= TARGET_ACC), float("nan"))
    return {
        "images_per_s": p.images_per_s,
        "epoch_s": p.epoch_time_s / epochs,
        "train_s": p.train_time_s,
        "time_to_target_s": reach,
        "test_acc": curve[-1][2],
        "epochs": epochs,
        "bookkeeping_share": bookkeeping[0] / p.epoch_time_s,
        "histogram_share": histograms[0] / p.epoch_time_s,
        "batch_size": trainer.data.batch_size,
        "log_every": trainer.log_every_n_steps,
    }


def profile_default(tmp: Path, rows: int = 12) -> str:
    """Where one epoch of the default training spends its time, per operator (torch.profiler): a markdown table."""
    from torch.profiler import profile

    trainer = default_training(tmp)
    trainer.max_epochs = 1
    with profile(record_shapes=True) as prof:
        trainer.fit()
    trainer.logger.close()
    steps = trainer.state.step
    # Grouped by input shape, so conv1 and conv2 (and the two pools) get a row each.
    ops = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    lines = ["| operator (self time) | first input | ms per step | share |", "|---|---|---|---|"]
    lines += [
        f"| `{e.key}` | {e.input_shapes[0] if e.input_shapes else ''} | "
        f"{e.self_cpu_time_total / steps / 1e3:.2f} | {e.self_cpu_time_total / total:.0%} |"
        for e in ops[:rows]
    ]
    lines.append(f"| all operators | | {total / steps / 1e3:.2f} | 100% |")
    return "\n".join(lines)


def startup_seconds(*args: str, reps: int = 5) -> float:
    """Wall time of `python src/train.py ARGS` (median): what a user waits for --help or --cfg job."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "src/train.py"), *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tutorial-batches", type=int, default=1000)
    args = parser.parse_args()
    register_resolvers()
    torch.set_num_threads(torch.get_num_threads())

    data = FashionMNIST(root=str(ROOT / "data"))
    train_x, train_y, test_x, test_y = data.load()
    gflops = matmul_gflops()
    limit = gflops * 1e9 / lenet5_train_flops()
    print(f"matmul: {gflops:.0f} GFLOP/s -> LeNet-5 compute limit {limit:,.0f} training images/s", flush=True)

    tut, ours = [], []
    for rep in range(args.reps):
        tut.append(tutorial(train_x, train_y, test_x, test_y, args.tutorial_batches))
        print(
            f"[{rep + 1}/{args.reps}] tutorial: {tut[-1]['images_per_s']:,.0f} img/s, "
            f"epoch {tut[-1]['epoch_s']:.1f} s (extrapolated)",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(project_default(Path(tmp)))
        print(
            f"[{rep + 1}/{args.reps}] default: {ours[-1]['images_per_s']:,.0f} img/s, epoch "
            f"{ours[-1]['epoch_s']:.2f} s, {TARGET_ACC} test acc after {ours[-1]['time_to_target_s']:.1f} s "
            f"of training (final {ours[-1]['test_acc']:.4f})",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in tut) for k in tut[0]}
    mine = {
        k: statistics.median(r[k] for r in ours)
        for k in (
            "images_per_s",
            "epoch_s",
            "time_to_target_s",
            "test_acc",
            "train_s",
            "bookkeeping_share",
            "histogram_share",
        )
    }
    help_s, cfg_s = startup_seconds("--help"), startup_seconds("--cfg", "job")
    with tempfile.TemporaryDirectory() as tmp:
        profile_table = profile_default(Path(tmp))
    rows = [
        (
            "training images/s",
            f"{med['images_per_s']:,.0f}",
            f"{mine['images_per_s']:,.0f}",
            f"{mine['images_per_s'] / med['images_per_s']:.1f}x",
        ),
        (
            "epoch with its validation, s",
            f"{med['epoch_s']:.1f}",
            f"{mine['epoch_s']:.2f}",
            f"{med['epoch_s'] / mine['epoch_s']:.1f}x faster",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    report = f"""# Benchmark results

Measured by `make bench` (`python bench/bench.py --reps {args.reps}`) on {platform.processor() or platform.machine()},
{torch.get_num_threads()} threads, torch {torch.__version__}, {time.strftime("%Y-%m-%d")}. Medians of {args.reps} repetitions, all in one run.

| | tutorial loop (a) | default training (b) | ratio |
|---|---|---|---|
{table}

- (a) batch 4, per-sample PIL -> ToTensor -> Normalize DataLoader (2 workers), SGD lr 0.001 momentum 0.9,
  a full pass over the 10,000 test images every 1,000 batches: {args.tutorial_batches} batches timed and one
  validation pass ({med["val_pass_s"]:.1f} s), extrapolated to 15,000 batches and 15 validations.
- (b) `python src/train.py` defaults: LeNet-5, batch {ours[0]["batch_size"]}, SGD + one-cycle, in-memory data,
  channels-last, {ours[0]["epochs"]} epochs; test accuracy {mine["test_acc"]:.4f} after {mine["train_s"]:.1f} s of training.
- Logging (scalars every {ours[0]["log_every"]} steps) and the checkpoint after every epoch: {mine["bookkeeping_share"]:.1%} of the
  epoch time. The weight and gradient histograms written after every epoch:
  {mine["histogram_share"]:.2%} of the epoch time.
- Time to reach {TARGET_ACC} test accuracy with the defaults: **{mine["time_to_target_s"]:.1f} s** of training
  (test accuracy read after each epoch).
- Machine: float32 matmul {gflops:.0f} GFLOP/s; LeNet-5 needs {lenet5_train_flops() / 1e6:.2f} MFLOP per training
  image, so the compute limit is {limit:,.0f} images/s; the default training reaches
  **{mine["images_per_s"] / limit:.1%}** of it.
- `python src/train.py --help`: {help_s:.2f} s; `python src/train.py --cfg job`: {cfg_s:.2f} s (medians of 5).
- GPU: not measured (no GPU machine was available to this task).

## Where the default training's time goes

One epoch of the default training (batch {ours[0]["batch_size"]}) under `torch.profiler`: the most expensive operators by their
own time, per step (the profiler adds some overhead to every operator; a backward operator's first input is the
gradient of its output: 16 channels is conv2, 6 channels conv1):

{profile_table}
"""
    (ROOT / "bench" / "RESULTS.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
