"""Callbacks that are attnlab's own; everything else comes from Lightning."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from attnlab import runtime
from attnlab.runs import RunPreempted

log = logging.getLogger(__name__)


class TokenThroughput(L.Callback):
    """Source+target (non-padding) tokens per second of training, shown in the progress bar.

    Time is measured from batch start to batch end, so validation and checkpointing do not
    dilute the figure; ``tokens_per_sec`` is the whole-run average reported in metrics.json.
    """

    def __init__(self, window: int = 50):
        self.window = window
        self.total_tokens = 0
        self.total_seconds = 0.0
        self.source_tokens = 0
        self.target_tokens = 0
        self._recent: list[tuple[int, float]] = []
        self._start = 0.0
        self._fit_start = time.time()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.time()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Under DDP each rank counted its own batches: the run's rate is their sum.
        import torch

        if trainer.world_size > 1:
            totals = torch.tensor(
                [float(self.total_tokens), self.total_seconds], device=pl_module.device
            )
            tokens = trainer.strategy.reduce(totals[:1].clone(), reduce_op="sum")
            seconds = trainer.strategy.reduce(totals[1:].clone(), reduce_op="max")
            self.total_tokens, self.total_seconds = int(tokens.item()), float(seconds.item())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # With each validation score: how much wall-clock and data it took (learning curves
        # against time, steps and FLOPs in attnlab-report).
        if trainer.sanity_checking:
            return
        for name, value in (
            ("progress/wall_s", time.time() - self._fit_start),
            ("progress/source_tokens", float(self.source_tokens)),
            ("progress/target_tokens", float(self.target_tokens)),
        ):
            pl_module.log(name, value, on_step=False, on_epoch=True)

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
        source, target = int(batch.num_source_tokens), int(batch.num_target_tokens)
        self.source_tokens += source
        self.target_tokens += target
        tokens = source + target
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
            # One key per validation sentence: W&B draws a list of differently sized images wrongly.
            for index, picture in enumerate(rendered):
                logger.log_image(
                    key=f"val/attention_{index}",
                    images=[str(picture.path)],
                    caption=[picture.hypothesis],
                    step=trainer.global_step,
                )
            if samples:
                logger.log_text(
                    key="val/samples",
                    columns=["source", "hypothesis", "reference"],
                    data=samples,
                    step=trainer.global_step,
                )


class ReleaseFreedMemory(L.Callback):
    """Returns the heap's free pages to the OS every ``every_n_steps`` training steps and after
    each validation (``runtime.release_freed_memory``); ``every_n_steps: 0`` only after
    validation. Opt-in: training faults the pages back in within tens of updates, so it lowers
    the resident size only for a while."""

    def __init__(self, every_n_steps: int = 100):
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._released_at = -1  # with gradient accumulation a step spans several batches

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        due = self.every_n_steps and step and step % self.every_n_steps == 0
        if due and step != self._released_at:
            self._released_at = step
            self._release()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._release()

    @staticmethod
    def _release() -> None:
        runtime.release_freed_memory()


class CheckpointOnSignal(L.Callback):
    """On SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before they preempt or time
    out a job): finish the current step, save ``last.ckpt``, stop, and only then pass the signal
    to whoever handled it before (submitit requeues the job there). Rerunning the same command
    resumes from that checkpoint. No validation runs in between: a grace period is short."""

    def __init__(self, dirpath: str, signals: list[str] | None = None):
        import signal

        from attnlab.config_errors import require

        names = list(signals) if signals is not None else ["SIGTERM", "SIGUSR1", "SIGUSR2"]
        for name in names:
            require(hasattr(signal, name), "signals", f"unknown signal {name!r}")
        self.dirpath = dirpath
        self.signals = [getattr(signal, name) for name in names]
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import signal

        # After Lightning has installed its own handlers, so this one sees the signal first.
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self.received is None:
            return
        import signal

        path = f"{self.dirpath}/last.ckpt"
        trainer.save_checkpoint(path)
        name = signal.Signals(self.received).name
        log.warning("%s: saved %s at step %d; stopping", name, path, trainer.global_step)
        raise RunPreempted(self.received, path)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, RunPreempted):
            previous = self._previous.get(exception.signum)
            if callable(previous):  # e.g. submitit's requeue, now that the state is saved
                previous(exception.signum, None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def _restore(self) -> None:
        import signal

        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
