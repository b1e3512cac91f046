"""The Trainer: one model's epochs over in-memory batches, validation, checkpoints and clean stops.

It owns its settings (conf/trainer/default.yaml), the device, the components it trains and where it
stands (`RunState`), so that run.py only says what to do: setup, then run (fit, then test). What watches a
run (the logger's views, a search trial's reports) is handed to it as `Callback`s (callbacks.py), with the
components. Metrics stay on the device and are read once per logging interval, so the loop never waits on a
host-device round trip per batch.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fashionlab import checkpoint, signals
from fashionlab.callbacks import Callback, StopRun
from fashionlab.config import pick_device
from fashionlab.metrics import Predictions, evaluate, latency_ms, predict
from fashionlab.run_state import RunState
from fashionlab.status import Outcome, Status

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss became NaN, infinite or absurdly large: the run cannot recover."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; a checkpoint of the exact position was written."""


class Trainer:
    """conf/trainer/default.yaml builds it; `setup` hands it the components; `fit` trains them."""

    def __init__(
        self,
        max_epochs: int = 10,
        device: str = "auto",
        precision: str = "32",
        compile: bool = False,
        threads: int | None = None,
        channels_last: bool = True,
        log_every_n_steps: int = 20,
        val_every_n_steps: int = 0,
        divergence_threshold: float = 1e4,
        deterministic: bool = False,
        progress_bar: bool = True,
        latency_images: int = 200,
    ):
        self.max_epochs = max_epochs
        self.latency_images = latency_images
        self.device = pick_device(str(device))
        self.precision = str(precision)
        self.compile = compile
        self.threads = threads
        self.channels_last = channels_last
        self.log_every_n_steps = log_every_n_steps
        self.val_every_n_steps = val_every_n_steps
        self.divergence_threshold = divergence_threshold
        self.deterministic = deterministic
        self.progress_bar = progress_bar
        self.order = torch.Generator()  # the data order: its own stream, saved in checkpoints
        self.stop_signal: int | None = None  # set by the signal handler (or a callback); checked after every batch
        self.stops = signals.STOPS  # the signals that stop it at its batch (a SLURM trial's job: USR2 too)
        self.callbacks: list[Callback] = []
        self.resumed = False  # set by restore()
        self.predictions: Predictions | None = None  # the test split's, once test() has run

    def prepare(self, seed: int, threads: int | None = None) -> None:
        """Threads, seeds and determinism, before anything is built. `threads` is used if trainer.threads is null."""
        threads = self.threads or threads
        if threads:
            torch.set_num_threads(int(threads))
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        self.order.manual_seed(seed)
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

    def setup(
        self,
        data: Any,
        model: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None,
        logger: Any,
        checkpoint_dir: Path,
        objective: Any,
        callbacks: Sequence[Callback] = (),
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """Take the components; `optimizer` and `scheduler` are partials that get the parameters and the plan.
        `data` is a fashionlab.data.ImageData, `logger` a fashionlab.loggers.TensorBoardLogger (a Callback too), `loss`
        the training loss (conf/loss/; cross entropy if none): validation and test losses are plain cross entropy."""
        self.loss = loss if loss is not None else torch.nn.CrossEntropyLoss()
        self.data, self.logger, self.checkpoint_dir = data, logger, Path(checkpoint_dir)
        self.callbacks = [logger, *callbacks]
        self.metric, self.mode = objective.metric, objective.mode
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer(self.model.parameters())
        self.make_scheduler = scheduler
        total_steps = self.max_epochs * data.steps_per_epoch()
        self.scheduler = scheduler(self.optimizer, total_steps=total_steps) if scheduler else None
        self.state = RunState(total_steps=total_steps, model_target=checkpoint.model_target(model))
        self.state.metrics["model/params"] = float(sum(p.numel() for p in self.model.parameters()))

    def autocast(self) -> Callable[[], Any]:
        if self.precision == "bf16":
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext

    def request_stop(self, signum: int, frame: Any = None) -> None:
        """SIGINT/SIGTERM while training: finish the batch, write a checkpoint, raise Interrupted (see fit)."""
        self.stop_signal = signum
        signals.request(signum)  # the process was asked to stop: a sweeper in this process stops too
        log.warning(f"signal {signum}: stopping after this batch and writing a checkpoint")

    def run(self) -> Outcome:
        """Fit from where `state` stands, then test: the outcome, however it ended.

        Pruned (a callback's StopRun), diverged and interrupted runs are outcomes; anything else raises, after the
        callbacks have been told that the run failed.
        """
        self._call("on_fit_start")
        p = self.state
        outcome = Outcome(Status.FAILED)
        try:
            if signals.pending() is not None:  # it came before training started (a search's process records it)
                self.stop_signal = signals.pending()
            with signals.caught(self.request_stop, self.stops):
                self.fit()
                self.test()
            outcome = Outcome(Status.COMPLETED, p.best.value if p.best else None, p.epoch)
        except StopRun as e:
            outcome = e.outcome
        except Diverged as e:
            outcome = Outcome(Status.DIVERGED, epochs=p.epoch, error=str(e))
        except Interrupted as e:
            outcome = Outcome(Status.INTERRUPTED, epochs=p.epoch, error=f"interrupted by {e}")
        except BaseException as e:
            outcome = Outcome(Status.FAILED, epochs=p.epoch, error=f"{type(e).__name__}: {e}")
            raise
        finally:
            self._call("on_end", outcome)
        return outcome

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(self) -> None:
        """Train from where `state` stands to max_epochs, checkpointing after every epoch."""
        p, data, optimizer, scheduler = self.state, self.data, self.optimizer, self.scheduler
        autocast = self.autocast()
        step_model = torch.compile(self.model) if self.compile else self.model
        steps_per_epoch = data.steps_per_epoch()
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format

        for epoch in range(p.epoch, self.max_epochs):
            epoch_order = self.order.get_state()  # a mid-epoch checkpoint replays this epoch's permutation
            skip = p.batch
            self.model.train()
            zero = torch.zeros((), device=self.device)
            win_loss, win_correct, win_batches, win_images, epoch_images = zero.clone(), zero.clone(), 0, 0, 0
            start, val_time = time.perf_counter(), 0.0
            bar = tqdm(
                total=steps_per_epoch,
                initial=skip,
                desc=f"epoch {epoch + 1}/{self.max_epochs}",
                disable=None if self.progress_bar else True,
                leave=False,
                dynamic_ncols=True,
            )
            for i, (x, y) in enumerate(data.train_batches(self.order, skip), start=skip):
                with autocast():
                    logits = step_model(x.contiguous(memory_format=fmt))
                    loss = self.loss(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                p.step += 1
                p.images += len(y)
                win_loss += loss.detach()
                win_correct += (logits.detach().argmax(1) == y).sum()
                win_batches += 1
                win_images += len(y)
                epoch_images += len(y)
                bar.update()

                if p.step % self.log_every_n_steps == 0 or i == steps_per_epoch - 1:
                    train_loss = float(win_loss) / win_batches
                    if not math.isfinite(train_loss) or train_loss > self.divergence_threshold:
                        bar.close()
                        raise Diverged(
                            f"train/loss={train_loss:.4g} at step {p.step} (epoch {epoch + 1}): the "
                            f"run diverged (threshold trainer.divergence_threshold="
                            f"{self.divergence_threshold:g}); lower optimizer.lr."
                        )
                    metrics = {
                        "train/loss": train_loss,
                        "train/acc": float(win_correct) / win_images,
                        "train/lr": optimizer.param_groups[0]["lr"],
                    }
                    self.logger.log_scalars(metrics, p.step)
                    p.metrics.update(metrics)
                    elapsed = time.perf_counter() - start - val_time
                    bar.set_postfix(loss=f"{train_loss:.3f}", img_s=f"{epoch_images / max(elapsed, 1e-9):,.0f}")
                    win_loss.zero_(), win_correct.zero_()
                    win_batches = win_images = 0

                if self.val_every_n_steps and p.step % self.val_every_n_steps == 0 and i != steps_per_epoch - 1:
                    t = time.perf_counter()
                    self.logger.log_scalars(evaluate(self.model, data, "val", autocast), p.step)
                    self.model.train()
                    val_time += time.perf_counter() - t

                self._call("on_step_end")
                if self.stop_signal is not None:
                    bar.close()
                    p.batch = i + 1
                    p.train_time_s += time.perf_counter() - start - val_time
                    checkpoint.save_trainer(self, "last.pt", order_state=epoch_order)
                    raise Interrupted(
                        f"signal {self.stop_signal} at step {p.step} (epoch {epoch + 1}, "
                        f"batch {i + 1}/{steps_per_epoch})"
                    )
            bar.close()
            train_time = time.perf_counter() - start - val_time

            t = time.perf_counter()
            metrics = evaluate(self.model, data, "val", autocast)
            epoch_time = time.perf_counter() - start
            p.epoch, p.batch = epoch + 1, 0
            p.train_time_s += train_time
            p.epoch_time_s += epoch_time
            metrics.update(
                {
                    "epoch": epoch + 1,
                    "time/epoch_s": epoch_time,
                    "time/train_images_per_s": epoch_images / train_time,
                    "time/val_s": time.perf_counter() - t + val_time,
                }
            )
            p.metrics.update(metrics)
            if self.metric in metrics:
                p.curve[str(p.epoch)] = metrics[self.metric]
            improved = p.update_best(metrics, self.metric, self.mode)
            if p.best is not None:  # the objective so far: HPARAMS shows it first (its tags sort by name)
                metrics[f"best/{self.metric}"] = p.best.value
            self.logger.log_scalars(metrics, p.step)
            log.info(
                f"epoch {epoch + 1}/{self.max_epochs}: train/loss {p.metrics['train/loss']:.4f}  "
                f"val/loss {metrics['val/loss']:.4f}  val/acc {metrics['val/acc']:.4f}  "
                f"{metrics['time/train_images_per_s']:,.0f} img/s  {epoch_time:.1f}s"
            )
            checkpoint.save_trainer(self, "last.pt")
            if improved:
                checkpoint.copy(self.checkpoint_dir / "last.pt", self.checkpoint_dir / "best.pt")
            self._call("on_epoch_end", metrics)  # after the checkpoint: a run stopped here loses nothing

    def test(self) -> dict[str, float]:
        """The test split, once, at the end, with the weights the objective chose: best.pt, the best epoch's.

        The validation split chose that epoch; the test split chooses nothing. Logged, kept in state.metrics
        (with the confusion matrix and the epoch tested), and handed to the callbacks as `self.predictions`.
        """
        p, best = self.state, self.checkpoint_dir / "best.pt"
        p.tested_epoch = p.epoch
        if p.best is not None and best.is_file():
            self.model.load_state_dict(checkpoint.load(best, self.model, p.model_target)["model"])
            p.tested_epoch = p.best.epoch
        self.predictions = predict(self.model, self.data, "test", self.autocast())
        metrics = {
            **self.predictions.metrics(),
            "model/latency_ms": latency_ms(self.model, self.data, self.autocast(), self.latency_images),
        }
        p.confusion = self.predictions.confusion.tolist()
        self.logger.log_scalars(metrics, p.step)
        p.metrics.update(metrics)
        self._call("on_test_end", metrics)
        return metrics
