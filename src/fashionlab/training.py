"""The Trainer: one model's epochs over in-memory batches, validation, checkpoints and clean stops.

It owns its settings (conf/trainer/default.yaml), the device, the components it trains and where it
stands (`Progress`), so that run.py only says what to do: setup, then run (fit, then test). What watches a
run (the logger's views, a search trial's reports) is handed to it as `Callback`s, with the components.
Metrics stay on the device and are read once per logging interval, so the loop never waits on a host-device
round trip per batch.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fashionlab import checkpoint
from fashionlab.config import pick_device
from fashionlab.progress import Progress
from fashionlab.status import Outcome, Status

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss became NaN, infinite or absurdly large: the run cannot recover."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; a checkpoint of the exact position was written."""


class StopRun(Exception):
    """Raised by a callback to end the run with its outcome (a search's pruner: Outcome(PRUNED, ...))."""

    def __init__(self, outcome: Outcome):
        super().__init__(f"{outcome.status} after epoch {outcome.epochs}")
        self.outcome = outcome


class Callback:
    """What watches a run: the Trainer calls these hooks on each callback it was handed (setup's `callbacks`).

    Every hook does nothing unless a subclass says otherwise. on_epoch_end runs after the epoch's checkpoint,
    so a callback that raises StopRun there loses nothing; on_end runs however the run ended.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        pass

    def on_test_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        pass

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        pass


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data: Any, split: str, autocast: Any = nullcontext) -> dict[str, float]:
    """Mean loss and accuracy over a whole split, in large batches; one read from the device at the end."""
    model.eval()
    loss_sum: Any = 0  # tensors on the device after the first batch
    correct: Any = 0
    for x, y in data.eval_batches(split):
        with autocast():
            logits = model(x)
        loss_sum = loss_sum + F.cross_entropy(logits.float(), y, reduction="sum")
        correct = correct + (logits.argmax(1) == y).sum()
    n = data.size(split)
    return {f"{split}/loss": float(loss_sum) / n, f"{split}/acc": float(correct) / n}


@torch.inference_mode()
def predict(model: torch.nn.Module, data: Any, split: str, autocast: Any = nullcontext) -> Predictions:
    """Every image of a split through the model: its logits (float32, on the CPU) and the labels."""
    model.eval()
    logits, labels = [], []
    for x, y in data.eval_batches(split):
        with autocast():
            logits.append(model(x).float().cpu())
        labels.append(y.cpu())
    return Predictions(split, torch.cat(logits), torch.cat(labels), tuple(data.classes))


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, data: Any, autocast: Any = nullcontext, images: int = 200) -> float:
    """Milliseconds per image, one image at a time (as a deployed classifier answers requests): the median of
    3 passes over the first `images` test images, after 10 to warm up, on the run's device and threads."""
    model.eval()
    x, _ = next(data.eval_batches("test"))
    x = x[:images]
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with autocast():
        for i in range(min(10, len(x))):
            model(x[i : i + 1])
        times = []
        for _ in range(3):
            synchronize()
            start = time.perf_counter()
            for i in range(len(x)):
                model(x[i : i + 1])
            synchronize()
            times.append((time.perf_counter() - start) * 1000 / len(x))
    return sorted(times)[1]


def class_tag(name: str) -> str:
    """A class name as a tag: "T-shirt/top" would make TensorBoard open one more level."""
    return name.replace("/", "-")


@dataclass
class Predictions:
    """A split's logits and labels, and what follows from them: loss, accuracy, per class, the confusion matrix."""

    split: str
    logits: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    @property
    def confusion(self) -> torch.Tensor:
        """counts[true class, predicted class]."""
        n = len(self.classes)
        return torch.bincount(self.labels * n + self.logits.argmax(1), minlength=n * n).reshape(n, n)

    def metrics(self) -> dict[str, float]:
        """`split/loss`, `split/acc`, and `split/acc_per_class/<class>` for each class the split has."""
        s, counts = self.split, self.confusion
        out = {
            f"{s}/loss": float(F.cross_entropy(self.logits, self.labels, reduction="sum")) / len(self.labels),
            f"{s}/acc": float(counts.diag().sum()) / len(self.labels),
        }
        for i, name in enumerate(self.classes):
            if counts[i].sum():
                out[f"{s}/acc_per_class/{class_tag(name)}"] = float(counts[i, i] / counts[i].sum())
        return out


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
    ) -> None:
        """Take the components; `optimizer` and `scheduler` are partials that get the parameters and the plan.

        `data` is a fashionlab.data.ImageData, `logger` a fashionlab.loggers.TensorBoardLogger (a Callback too:
        it writes its views from the hooks), `objective` the config's objective (metric, mode).
        """
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
        self.progress = Progress(total_steps=total_steps, model_target=checkpoint.model_target(model))
        self.progress.metrics["model/params"] = float(sum(p.numel() for p in self.model.parameters()))

    def autocast(self) -> Callable[[], Any]:
        if self.precision == "bf16":
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the batch, write a checkpoint and raise Interrupted (see fit)."""

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_signal = signum
            log.warning(f"signal {signum}: stopping after this batch and writing a checkpoint")

        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            try:
                signal.signal(s, request_stop)
            except ValueError:  # not the main thread (some launchers): no clean stop, checkpoints still work
                pass
        try:
            yield
        finally:
            for s, handler in previous.items():
                try:
                    signal.signal(s, handler)
                except ValueError:
                    pass

    def run(self) -> Outcome:
        """Fit from where `progress` stands, then test: the outcome, however it ended.

        Pruned (a callback's StopRun), diverged and interrupted runs are outcomes; anything else raises, after the
        callbacks have been told that the run failed.
        """
        self._call("on_fit_start")
        p = self.progress
        outcome = Outcome(Status.FAILED)
        try:
            with self.stop_on_signals():
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
        """Train from where `progress` stands to max_epochs, checkpointing after every epoch."""
        p, data, optimizer, scheduler = self.progress, self.data, self.optimizer, self.scheduler
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
                    loss = F.cross_entropy(logits.float(), y)
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
                    self.save("last.pt", order_state=epoch_order)
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
            self.save("last.pt")
            if improved:
                checkpoint.copy(self.checkpoint_dir / "last.pt", self.checkpoint_dir / "best.pt")
            self._call("on_epoch_end", metrics)  # after the checkpoint: a run stopped here loses nothing

    def test(self) -> dict[str, float]:
        """The test split, once, at the end, with the weights the objective chose: best.pt, the best epoch's.

        The validation split chose that epoch; the test split chooses nothing. Logged, kept in progress.metrics
        (with the confusion matrix and the epoch tested), and handed to the callbacks as `self.predictions`.
        """
        p, best = self.progress, self.checkpoint_dir / "best.pt"
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

    def save(self, name: str, order_state: torch.Tensor | None = None) -> None:
        # Flush first: events the checkpoint covers must be on disk before it, or a SIGKILL loses them.
        self.logger.flush()
        rng = checkpoint.rng_state(self.order)
        if order_state is not None:
            rng["data_order"] = order_state
        checkpoint.save(
            self.checkpoint_dir / name,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "progress": self.progress.state_dict(),
                "rng": rng,
                "model_target": self.progress.model_target,
            },
        )

    def restore(self, name: str = "last.pt") -> None:
        """Continue from a checkpoint: weights, optimizer, schedule, progress and every RNG stream."""
        state = checkpoint.load(self.checkpoint_dir / name, self.model, self.progress.model_target)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved = Progress.from_state_dict(state["progress"])
        total_steps = self.progress.total_steps
        if self.scheduler is not None and saved.total_steps == total_steps:
            self.scheduler.load_state_dict(state["scheduler"])
        elif self.scheduler is not None:  # e.g. a larger trainer.max_epochs: re-plan the schedule to the new end
            assert self.make_scheduler is not None
            log.warning(
                f"the learning-rate schedule was planned for {saved.total_steps} steps and is now "
                f"re-planned for {total_steps}; it continues from step {saved.step}"
            )
            self.scheduler = self.make_scheduler(self.optimizer, total_steps=total_steps, last_epoch=saved.step - 1)
        checkpoint.set_rng_state(state["rng"], self.order)
        saved.total_steps = total_steps
        self.progress = saved
        self.resumed = True
