"""TensorBoard logging: the tutorial's four views (IMAGES, SCALARS, GRAPHS, PROJECTOR) plus HPARAMS and TEXT.

Everything goes into one log directory per run (the run's Hydra output directory), so that
`tensorboard --logdir outputs` or `--logdir multirun/<sweep>` shows one run per job. The logger is one of the
Trainer's callbacks: it opens its run when fitting starts, writes the after-training views when the test is
done, and the HPARAMS row with the run's status when it ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams.api_pb2 import Status as SessionStatus
from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from fashionlab import record
from fashionlab.callbacks import Callback
from fashionlab.figures import confusion_figure, predictions_figure
from fashionlab.metrics import Predictions, class_tag
from fashionlab.status import Outcome, Status
from fashionlab.views import add_embedding, add_graph, image_grid

if TYPE_CHECKING:
    from fashionlab.training import Trainer

# The chart the tutorial draws with add_scalars. add_scalars would write one extra run per line
# (`<run>/Training vs. Validation Loss_Training`...), cluttering every comparison; a custom-scalars
# layout over the run's own tags draws the same overlaid chart with no extra runs.
LOSS_CHART = {
    "Training vs. Validation Loss": {
        "loss": ["Multiline", ["^train/loss$", "^val/loss$"]],
        "accuracy": ["Multiline", ["^train/acc$", "^val/acc$"]],
    }
}


class TensorBoardLogger(Callback):
    """Writes one run's TensorBoard events; each view can be switched off in conf/logging/tensorboard.yaml.

    `run_hparams` (what the run chose: the HPARAMS row) and `run_notes` (the TEXT tab) are what the job knows
    of the run: run.build sets them when it builds the logger.
    """

    def __init__(
        self,
        log_dir: str,
        images: bool = True,
        image_samples: int = 32,
        graph: bool = True,
        embedding: bool = True,
        embedding_samples: int = 100,
        hparams: bool = True,
        text: bool = True,
        loss_chart: bool = True,
        pr_curves: bool = True,
        confusion_matrix: bool = True,
        predictions: bool = True,
        prediction_samples: int = 16,
        histograms: bool = True,
        flush_secs: int = 30,
    ):
        self.log_dir = log_dir
        self.images, self.image_samples = images, image_samples
        self.graph = graph
        self.embedding, self.embedding_samples = embedding, embedding_samples
        self.hparams, self.text, self.loss_chart = hparams, text, loss_chart
        self.pr_curves, self.confusion_matrix, self.histograms = pr_curves, confusion_matrix, histograms
        self.predictions, self.prediction_samples = predictions, prediction_samples
        self.flush_secs = flush_secs
        self.run_hparams: dict = {}
        self.run_notes: dict[str, str] = {}
        self.writer: SummaryWriter | None = None

    # The Trainer's hooks.
    def on_fit_start(self, trainer: Trainer) -> None:
        # A resumed run purges what the stopped run wrote after its checkpoint: one continuous curve.
        self.open(purge_step=trainer.state.step + 1 if trainer.resumed else None)
        if not trainer.resumed:
            self.log_start(trainer.model, trainer.data, self.run_notes)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if not self.histograms:  # HISTOGRAMS / DISTRIBUTIONS: each layer's weights, and the last step's gradients
            return
        w, step = self._writer(), trainer.state.step
        for name, param in trainer.model.named_parameters():
            w.add_histogram(f"weights/{name}", param.detach().float().cpu(), step)
            if param.grad is not None:
                w.add_histogram(f"gradients/{name}", param.grad.float().cpu(), step)

    def on_test_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.log_features(trainer.model, trainer.data, trainer.state.step)
        assert trainer.predictions is not None
        self.log_evaluation(trainer.predictions, trainer.data, trainer.state.step, trainer.state.tested_epoch)

    def on_end(self, trainer: Trainer, outcome: Outcome) -> None:
        if outcome.status != Status.INTERRUPTED:  # the HPARAMS row is written once, when the run has an outcome
            self.log_end(record.tensorboard_hparams(self.run_hparams, outcome.status), ok=outcome.status.has_result)
        self.close()

    def open(self, purge_step: int | None = None) -> None:
        """Open the writer; on resume, purge_step makes TensorBoard drop the killed run's later events."""
        if purge_step is not None:
            # TensorBoard reads a run's event files in name order, which starts with the second each was made,
            # then host and process id: a resume in the very second the stopped run made its file (a quick retry)
            # must wait for the next second, or its file could be read first and the curve would go back in time.
            made = [int(p.name.split(".")[3]) for p in Path(self.log_dir).glob("events.out.tfevents.*")]
            while made and time.time() < max(made) + 1:
                time.sleep(0.05)
        self.writer = SummaryWriter(self.log_dir, purge_step=purge_step, flush_secs=self.flush_secs)

    def log_start(self, model: torch.nn.Module, data: Any, notes: dict[str, str]) -> None:
        """The views written once, when a run starts (not again when it resumes)."""
        w = self._writer()
        if self.images:
            images, _ = data.splits["train"]
            w.add_image("train/samples", image_grid(images[: self.image_samples].cpu()), 0)
        if self.graph:
            x, _ = next(data.eval_batches("val"))
            add_graph(w, model, x[:4])
        if self.embedding:  # the tutorial's projector view: raw pixels, class names, thumbnails
            x, y = self._embedding_sample(data)
            labels = [data.classes[i] for i in y.tolist()]
            add_embedding(w, x.flatten(1).float() / 255, labels, x.float() / 255, 0, "images")
        if self.loss_chart:
            w.add_custom_scalars(LOSS_CHART)
        if self.text:
            for tag, body in notes.items():
                w.add_text(tag, body, 0)
        w.flush()

    def _writer(self) -> SummaryWriter:
        assert self.writer is not None, "the logger is not open (on_fit_start opens it)"
        return self.writer

    def _embedding_sample(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = data.splits["train"]
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(labels), generator=g)[: self.embedding_samples]
        return images[idx.to(images.device)].cpu(), labels[idx.to(labels.device)].cpu()

    def log_features(self, model: Any, data: Any, step: int) -> None:
        """The same images as the pixel embedding, as the model sees them after training (penultimate layer)."""
        if not self.embedding:
            return
        x, y = self._embedding_sample(data)
        device = next(model.parameters()).device
        with torch.inference_mode():
            feats = model.features(data.normalize(x.to(device))).float().cpu()
        labels = [data.classes[i] for i in y.tolist()]
        add_embedding(self._writer(), feats, labels, x.float() / 255, step, "features")

    def log_evaluation(self, predictions: Predictions, data: Any, step: int, epoch: int | None) -> None:
        """A split's evaluation views: a PR curve per class (PR CURVES), the confusion matrix and a grid of
        predictions (IMAGES). Per-class accuracies are scalars, logged with the split's other metrics."""
        w, split = self._writer(), predictions.split
        probs = predictions.logits.softmax(1)
        if self.pr_curves:
            for i, name in enumerate(predictions.classes):
                w.add_pr_curve(f"{split}/pr_curve/{class_tag(name)}", predictions.labels == i, probs[:, i], step)
        which = f"epoch {epoch}" if epoch else "the checkpoint"
        if self.confusion_matrix:
            title = f"{split}: true class against predicted class ({which})"
            w.add_figure(
                f"{split}/confusion_matrix",
                confusion_figure(predictions.confusion.tolist(), predictions.classes, title),
                step,
            )
        if self.predictions:  # the first images, and the mistakes it was surest of: what it gets wrong, and how
            n = self.prediction_samples
            wrong = (probs.argmax(1) != predictions.labels).nonzero().flatten()
            wrong = wrong[probs[wrong].max(1).values.argsort(descending=True)][: n // 2]
            shown = torch.cat([torch.arange(n - len(wrong)), wrong])
            images = data.splits[split][0][shown.to(data.splits[split][0].device)].cpu()
            figure = predictions_figure(images, probs[shown], predictions.labels[shown], predictions.classes)
            w.add_figure(f"{split}/predictions", figure, step)
        w.flush()

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        w = self._writer()
        for tag, value in metrics.items():
            w.add_scalar(tag, value, step)

    def log_end(self, hparams: dict, ok: bool) -> None:
        """The run's HPARAMS row, written when it ends so that its status is one of the columns.

        No experiment summary: without one, TensorBoard builds the table from every run's row and puts
        the hyperparameters that differ between runs first (one run's summary would fix the columns in
        alphabetical order). torch always marks the session a success: the real outcome is written here.
        """
        if not self.hparams:
            return
        file_writer = self._writer().file_writer
        assert file_writer is not None
        _, session_start, _ = hparams_summaries(hparams, {})
        file_writer.add_summary(session_start)
        sei = SessionEndInfo(
            status=SessionStatus.Value("STATUS_SUCCESS" if ok else "STATUS_FAILURE"), end_time_secs=time.time()
        )
        content = HParamsPluginData(session_end_info=sei, version=PLUGIN_DATA_VERSION)
        meta = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content.SerializeToString())
        )
        file_writer.add_summary(Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=meta)]))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
