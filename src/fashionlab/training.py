"""The training loop: epochs over in-memory batches, validation, checkpoints, clean stops.

Metrics stay on the device and are read once per logging interval, so the loop never waits on
a host-device round trip per batch.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fashionlab import checkpoint

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss became NaN, infinite or absurdly large: the run cannot recover."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; a checkpoint of the exact position was written."""


def new_progress(total_steps: int, model_target: str) -> dict:
    """Where a run stands: what Trainer.fit advances and a checkpoint saves."""
    return {"epoch": 0, "batch": 0, "step": 0, "images": 0, "best": None, "metrics": {}, "train_time_s": 0.0,
            "epoch_time_s": 0.0, "total_steps": total_steps, "model_target": model_target}


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data, split: str, autocast=nullcontext) -> dict[str, float]:
    """Mean loss and accuracy over a whole split, in large batches; one read from the device at the end."""
    model.eval()
    loss_sum = correct = 0
    for x, y in data.eval_batches(split):
        with autocast():
            logits = model(x)
        loss_sum = loss_sum + F.cross_entropy(logits.float(), y, reduction="sum")
        correct = correct + (logits.argmax(1) == y).sum()
    n = data.size(split)
    return {f"{split}/loss": float(loss_sum) / n, f"{split}/acc": float(correct) / n}


class Trainer:
    """Runs epochs; conf/trainer/default.yaml builds it."""

    def __init__(self, max_epochs: int = 10, device: str = "auto", precision: str = "32", compile: bool = False,
                 threads: int | None = None, channels_last: bool = True, log_every_n_steps: int = 20,
                 val_every_n_steps: int = 0, divergence_threshold: float = 1e4, deterministic: bool = False,
                 progress_bar: bool = True):
        self.max_epochs = max_epochs
        self.precision = str(precision)
        self.compile = compile
        self.threads = threads  # run.py applies it before anything is built (shared out in parallel sweeps)
        self.channels_last = channels_last
        self.log_every_n_steps = log_every_n_steps
        self.val_every_n_steps = val_every_n_steps
        self.divergence_threshold = divergence_threshold
        self.deterministic = deterministic
        self.progress_bar = progress_bar
        self.stop_signal: int | None = None  # set by the signal handler; checked after every batch

    def autocast(self, device: torch.device):
        if self.precision == "bf16":
            return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext

    def fit(self, model, data, optimizer, scheduler, logger, progress: dict, order: torch.Generator,
            checkpoint_dir: Path, objective) -> None:
        """Train from `progress` (mutated in place) to max_epochs, checkpointing after every epoch."""
        device = next(model.parameters()).device
        autocast = self.autocast(device)
        step_model = torch.compile(model) if self.compile else model
        steps_per_epoch = data.steps_per_epoch()
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format

        for epoch in range(progress["epoch"], self.max_epochs):
            epoch_order = order.get_state()  # a mid-epoch checkpoint replays this epoch's permutation
            skip = progress["batch"]
            model.train()
            zero = torch.zeros((), device=device)
            win_loss, win_correct, win_batches, win_images, epoch_images = zero.clone(), zero.clone(), 0, 0, 0
            start, val_time = time.perf_counter(), 0.0
            bar = tqdm(total=steps_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{self.max_epochs}",
                       disable=None if self.progress_bar else True, leave=False, dynamic_ncols=True)
            for i, (x, y) in enumerate(data.train_batches(order, skip), start=skip):
                with autocast():
                    logits = step_model(x.contiguous(memory_format=fmt))
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                progress["step"] += 1
                progress["images"] += len(y)
                step = progress["step"]
                win_loss += loss.detach()
                win_correct += (logits.detach().argmax(1) == y).sum()
                win_batches += 1
                win_images += len(y)
                epoch_images += len(y)
                bar.update()

                if step % self.log_every_n_steps == 0 or i == steps_per_epoch - 1:
                    train_loss = float(win_loss) / win_batches
                    if not math.isfinite(train_loss) or train_loss > self.divergence_threshold:
                        bar.close()
                        raise Diverged(f"train/loss={train_loss:.4g} at step {step} (epoch {epoch + 1}): the run "
                                       f"diverged (threshold trainer.divergence_threshold="
                                       f"{self.divergence_threshold:g}); lower optimizer.lr.")
                    metrics = {"train/loss": train_loss, "train/acc": float(win_correct) / win_images,
                               "train/lr": optimizer.param_groups[0]["lr"]}
                    logger.log_scalars(metrics, step)
                    progress["metrics"].update(metrics)
                    elapsed = time.perf_counter() - start - val_time
                    bar.set_postfix(loss=f"{train_loss:.3f}", img_s=f"{epoch_images / max(elapsed, 1e-9):,.0f}")
                    win_loss.zero_(), win_correct.zero_()
                    win_batches = win_images = 0

                if self.val_every_n_steps and step % self.val_every_n_steps == 0 and i != steps_per_epoch - 1:
                    t = time.perf_counter()
                    logger.log_scalars(evaluate(model, data, "val", autocast), step)
                    model.train()
                    val_time += time.perf_counter() - t

                if self.stop_signal is not None:
                    bar.close()
                    progress["batch"] = i + 1
                    progress["train_time_s"] += time.perf_counter() - start - val_time
                    self.save(checkpoint_dir / "last.pt", model, optimizer, scheduler, progress, order,
                              epoch_order, logger)
                    raise Interrupted(f"signal {self.stop_signal} at step {step} (epoch {epoch + 1}, "
                                      f"batch {i + 1}/{steps_per_epoch})")
            bar.close()
            train_time = time.perf_counter() - start - val_time

            t = time.perf_counter()
            metrics = evaluate(model, data, "val", autocast)
            epoch_time = time.perf_counter() - start
            progress["epoch"], progress["batch"] = epoch + 1, 0
            progress["train_time_s"] += train_time
            progress["epoch_time_s"] += epoch_time
            metrics.update({"epoch": epoch + 1, "time/epoch_s": epoch_time,
                            "time/train_images_per_s": epoch_images / train_time,
                            "time/val_s": time.perf_counter() - t + val_time})
            logger.log_scalars(metrics, progress["step"])
            progress["metrics"].update(metrics)
            value = metrics[objective.metric] if objective.metric in metrics else None
            best = progress["best"]
            improved = value is not None and (best is None or (value > best["value"] if objective.mode == "max"
                                                                else value < best["value"]))
            if improved:
                progress["best"] = {"value": value, "epoch": epoch + 1, "step": progress["step"]}
            log.info(f"epoch {epoch + 1}/{self.max_epochs}: train/loss {progress['metrics']['train/loss']:.4f}  "
                  f"val/loss {metrics['val/loss']:.4f}  val/acc {metrics['val/acc']:.4f}  "
                  f"{metrics['time/train_images_per_s']:,.0f} img/s  {epoch_time:.1f}s")
            self.save(checkpoint_dir / "last.pt", model, optimizer, scheduler, progress, order, order.get_state(),
                      logger)
            if improved:
                checkpoint.copy(checkpoint_dir / "last.pt", checkpoint_dir / "best.pt")

    def save(self, path, model, optimizer, scheduler, progress, order, order_state, logger) -> None:
        # Flush first: events the checkpoint covers must be on disk before it, or a SIGKILL loses them.
        logger.flush()
        rng = checkpoint.rng_state(order)
        rng["data_order"] = order_state
        checkpoint.save(path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "progress": progress, "rng": rng, "model_target": progress["model_target"],
        })
