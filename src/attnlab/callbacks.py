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
