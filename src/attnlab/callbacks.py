"""Callbacks that are attnlab's own; everything else comes from Lightning."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class TokenThroughput(L.Callback):
    """Source+target (non-padding) tokens per second of training, shown in the progress bar.

    Time is measured from batch start to batch end, so validation and checkpointing do not
    dilute the figure; ``tokens_per_sec`` is the whole-run average reported in metrics.json.
    """

    def __init__(self, window: int = 50):
        self.window = window
        self.total_tokens = 0
        self.total_seconds = 0.0
        self._recent: list[tuple[int, float]] = []
        self._start = 0.0

    @property
    def tokens_per_sec(self) -> float:
        return self.total_tokens / self.total_seconds if self.total_seconds else 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        seconds = time.perf_counter() - self._start
        tokens = int(batch.num_source_tokens) + int(batch.num_target_tokens)
        self.total_tokens += tokens
        self.total_seconds += seconds
        self._recent = [*self._recent[-(self.window - 1) :], (tokens, seconds)]
        recent_rate = sum(t for t, _ in self._recent) / max(sum(s for _, s in self._recent), 1e-9)
        pl_module.log(
            "train/tok_s",
            recent_rate,
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            batch_size=len(batch),
        )


class AttentionMaps(L.Callback):
    """Each validation epoch: heatmaps of a fixed set of validation sentences as PNGs in the run
    directory (``attention/epochNNN/``), logged to W&B as images, with a table of samples."""

    def __init__(
        self,
        num_sentences: int = 4,
        kind: str = "cross",
        layer: int = -1,
        every_n_epochs: int = 1,
        num_samples: int = 16,
    ):
        self.num_sentences, self.kind, self.layer = num_sentences, kind, layer
        self.every_n_epochs, self.num_samples = every_n_epochs, num_samples

    # on_validation_end runs after the module's own epoch-end hook, when this epoch's
    # hypotheses exist (callbacks' on_validation_epoch_end runs before it).
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs or pl_module.output_dir is None:
            return
        from attnlab.attention_maps import render_attention

        datamodule = trainer.datamodule
        data = datamodule.split_data(datamodule.valid_split)
        out_dir = pl_module.output_dir / "attention" / f"epoch{trainer.current_epoch:03d}"
        rendered = render_attention(
            pl_module.model,
            pl_module.tokenizer,
            data,
            range(min(self.num_sentences, len(data))),
            out_dir,
            pl_module.decode_cfg,
            kind=self.kind,
            layer=self.layer,
        )
        hypotheses = pl_module.last_hypotheses.get("val", {})
        samples = [
            [data.examples[i].source, hypotheses[i], data.examples[i].target]
            for i in sorted(hypotheses)[: self.num_samples]
        ]
        for logger in trainer.loggers:
            if type(logger).__name__ != "WandbLogger":
                continue
            logger.log_image(
                key="val/attention",
                images=[str(r.path) for r in rendered],
                caption=[r.hypothesis for r in rendered],
                step=trainer.global_step,
            )
            if samples:
                logger.log_text(
                    key="val/samples",
                    columns=["source", "hypothesis", "reference"],
                    data=samples,
                    step=trainer.global_step,
                )
