"""TensorBoard logging: the tutorial's four views (IMAGES, SCALARS, GRAPHS, PROJECTOR) plus HPARAMS and TEXT.

Everything goes into one log directory per run (the run's Hydra output directory), so that
`tensorboard --logdir outputs` or `--logdir multirun/<sweep>` shows one run per job.
"""

from __future__ import annotations

import time

import torch

# The chart the tutorial draws with add_scalars. add_scalars would write one extra run per line
# (`<run>/Training vs. Validation Loss_Training`...), cluttering every comparison; a custom-scalars
# layout over the run's own tags draws the same overlaid chart with no extra runs.
LOSS_CHART = {
    "Training vs. Validation Loss": {
        "loss": ["Multiline", ["^train/loss$", "^val/loss$"]],
        "accuracy": ["Multiline", ["^train/acc$", "^val/acc$"]],
    }
}


class TensorBoardLogger:
    """Writes one run's TensorBoard events; each view can be switched off in conf/logging/tensorboard.yaml."""

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
        flush_secs: int = 30,
    ):
        self.log_dir = log_dir
        self.images, self.image_samples = images, image_samples
        self.graph = graph
        self.embedding, self.embedding_samples = embedding, embedding_samples
        self.hparams, self.text, self.loss_chart = hparams, text, loss_chart
        self.flush_secs = flush_secs
        self.writer = None

    def open(self, purge_step: int | None = None) -> None:
        """Open the writer; on resume, purge_step makes TensorBoard drop the killed run's later events."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.log_dir, purge_step=purge_step, flush_secs=self.flush_secs)

    def log_start(self, model, data, notes: dict[str, str]) -> None:
        """The views written once, when a run starts (not again when it resumes)."""
        w = self.writer
        if self.images:
            from torchvision.utils import make_grid

            images, _ = data.splits["train"]
            sample = images[: self.image_samples].unsqueeze(1).cpu()
            w.add_image("train/samples", make_grid(sample, nrow=8, padding=2, pad_value=255), 0)
        if self.graph:
            import warnings

            x, _ = next(data.eval_batches("val"))
            with warnings.catch_warnings():  # add_graph traces with torch.jit.trace, which warns it is deprecated
                warnings.simplefilter("ignore")
                w.add_graph(model, x[:4])
        if self.embedding:  # the tutorial's projector view: raw pixels, class names, thumbnails
            x, y = self._embedding_sample(data)
            w.add_embedding(
                x.flatten(1).float() / 255,
                metadata=[data.classes[i] for i in y.tolist()],
                label_img=x.unsqueeze(1).float() / 255,
                global_step=0,
                tag="images",
            )
        if self.loss_chart:
            w.add_custom_scalars(LOSS_CHART)
        if self.text:
            for tag, body in notes.items():
                w.add_text(tag, body, 0)
        w.flush()

    def _embedding_sample(self, data):
        images, labels = data.splits["train"]
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(labels), generator=g)[: self.embedding_samples]
        return images[idx.to(images.device)].cpu(), labels[idx.to(labels.device)].cpu()

    def log_features(self, model, data, step: int) -> None:
        """The same images as the pixel embedding, as the model sees them after training (penultimate layer)."""
        if not self.embedding:
            return
        from fashionlab.data import normalize

        x, y = self._embedding_sample(data)
        device = next(model.parameters()).device
        with torch.inference_mode():
            feats = model.features(normalize(x.to(device))).float().cpu()
        self.writer.add_embedding(
            feats,
            metadata=[data.classes[i] for i in y.tolist()],
            label_img=x.unsqueeze(1).float() / 255,
            global_step=step,
            tag="features",
        )

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def log_end(self, hparams: dict, ok: bool) -> None:
        """The run's HPARAMS row, written when it ends so that its status is one of the columns.

        No experiment summary: without one, TensorBoard builds the table from every run's row and puts
        the hyperparameters that differ between runs first (one run's summary would fix the columns in
        alphabetical order). torch always marks the session a success: the real outcome is written here.
        """
        if not self.hparams:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.plugins.hparams.api_pb2 import Status
        from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
        from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        _, session_start, _ = hparams_summaries(hparams, {})
        self.writer.file_writer.add_summary(session_start)
        sei = SessionEndInfo(
            status=Status.Value("STATUS_SUCCESS" if ok else "STATUS_FAILURE"), end_time_secs=time.time()
        )
        content = HParamsPluginData(session_end_info=sei, version=PLUGIN_DATA_VERSION)
        meta = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content.SerializeToString())
        )
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=meta)]))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
