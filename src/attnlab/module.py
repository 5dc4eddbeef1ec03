"""The LightningModule: the only place that knows about training.

It receives a model, a criterion, and optimizer/scheduler factories already built from config
(``hydra.utils.instantiate`` with ``_partial_: true``); it never constructs them by name.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn

from attnlab.checkpoints import CHECKPOINT_KEY, checkpoint_metadata
from attnlab.config_errors import require
from attnlab.data.datamodule import Batch
from attnlab.decoding import generate
from attnlab.metrics import task_scores

log = logging.getLogger(__name__)


class Seq2SeqModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: Any,
        scheduler: Any | None = None,
        decode: dict | None = None,
        valid_decode: bool = True,
        scheduler_interval: str = "step",
        nonfinite_loss: str = "stop",
        compile: bool | dict[str, Any] = False,
    ):
        super().__init__()
        self.compile_options = _compile_options(compile)
        require(
            nonfinite_loss in ("stop", "skip"),
            "nonfinite_loss",
            f"must be 'stop' or 'skip', got {nonfinite_loss!r}",
        )
        self.nonfinite_loss = nonfinite_loss
        self.skipped_batches = 0
        self.model = model
        self.criterion = criterion
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.decode_cfg = dict(decode or {"strategy": "greedy"})
        self.valid_decode = valid_decode
        self.scheduler_interval = scheduler_interval
        self.tokenizer = None  # set from the datamodule or a checkpoint
        self.run_config: dict | None = None  # the resolved config, stored in every checkpoint
        self.output_dir: Path | None = None
        self.scores: dict[str, dict[str, Any]] = {}
        self.last_hypotheses: dict[str, dict[int, str]] = {}  # by prefix ("val", "test/<split>")
        # Per evaluation batch, keyed by its first example: under DDP the sampler pads the last
        # round with repeated batches, and a repeat must not be counted twice.
        self._sums: dict[str, dict[int, torch.Tensor]] = defaultdict(dict)
        self._hypotheses: dict[str, dict[int, str]] = defaultdict(dict)

    # -- training ------------------------------------------------------------------------------
    def configure_model(self) -> None:
        # Compiled when fitting: the training forward and the validation loss go through it
        # (eval mode is a second graph); decoding (encode/decode_step) never does.
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if self.compile_options is not None and fitting and not _is_compiled(self.model):
            _check_compile_backend(self.compile_options.get("backend", "inductor"))
            self.model.compile(**self.compile_options)  # in place: state_dict keys unchanged

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(batch.src, batch.src_pad_mask, batch.tgt_in)

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Logits of the real target tokens only: the padding's are never scored, and the
        # Transformer then skips it in every position-wise layer too.
        positions = batch.target_positions
        if getattr(self.criterion, "ctc_weight", 0.0) > 0:  # hybrid CTC/attention
            enc = self.model.encode(batch.src, batch.src_pad_mask)
            logits = self.model.decode(batch.tgt_in, enc, positions)
            ctc = self.model.ctc_log_probs(enc)
            loss_sum, nll_sum = self.criterion(logits, batch.tgt_out, ctc, positions)
        else:
            logits = self.model(batch.src, batch.src_pad_mask, batch.tgt_in, positions)
            loss_sum, nll_sum = self.criterion(logits, batch.tgt_out, target_positions=positions)
        return loss_sum, nll_sum, batch.num_target_tokens

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        loss_sum, nll_sum, ntokens = self._loss(batch)
        loss = loss_sum / ntokens
        if not torch.isfinite(loss):
            return self._nonfinite(loss, batch, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/nll", nll_sum / ntokens, batch_size=len(batch))
        return loss

    def _nonfinite(self, loss: torch.Tensor, batch: Batch, batch_idx: int) -> None:
        where = (
            f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}, "
            f"examples {batch.ids.tolist()[:8]}{'...' if len(batch) > 8 else ''})"
        )
        if self.nonfinite_loss == "skip":
            self.skipped_batches += 1
            log.warning("loss is %s at %s: batch skipped", loss.item(), where)
            return None  # Lightning makes no optimizer step for this batch
        # The weights have not been updated with this batch yet: they are the last good state.
        path = Path(self.output_dir or ".") / "checkpoints" / "last_good.ckpt"
        self.trainer.save_checkpoint(path)
        raise FloatingPointError(
            f"training loss is {loss.item()} at {where}; the last good state is saved in "
            f"{path} (module.nonfinite_loss=skip skips such batches instead)"
        )

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

    # -- evaluation ----------------------------------------------------------------------------
    def _split_name(self, stage: str, dataloader_idx: int) -> str:
        datamodule = self.trainer.datamodule
        if stage == "val":
            return datamodule.valid_split
        return datamodule.evaluation_splits()[dataloader_idx]

    def _eval_step(self, stage: str, batch: Batch, dataloader_idx: int, decode: bool) -> None:
        split = self._split_name(stage, dataloader_idx)
        loss_sum, nll_sum, ntokens = self._loss(batch)
        sums = torch.stack([loss_sum.detach(), nll_sum, ntokens.to(loss_sum.dtype)])
        key = f"{stage}/{split}"
        self._sums[key][int(batch.ids.min())] = sums
        if decode:
            for index, text in zip(batch.ids.tolist(), self.translate_batch(batch), strict=True):
                self._hypotheses[key][index] = text

    def translate_batch(self, batch: Batch, **overrides: Any) -> list[str]:
        settings = {**self.decode_cfg, **overrides}
        tok = self.tokenizer
        nbest = generate(
            self.model,
            batch.src,
            batch.src_pad_mask,
            bos_id=tok.bos_id,
            eos_id=tok.eos_id,
            **settings,
        )
        return [tok.decode(hyps[0].tokens) for hyps in nbest]

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("val", batch, dataloader_idx, decode=self.valid_decode)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("test", batch, dataloader_idx, decode=True)

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    def _finish_eval(self, stage: str) -> None:
        for key in sorted(k for k in self._sums if k.startswith(f"{stage}/")):
            split = key.split("/", 1)[1]
            per_batch = {first: s.tolist() for first, s in self._sums.pop(key).items()}
            columns = zip(*self._gather(per_batch).values(), strict=True)
            loss_sum, nll_sum, ntokens = (math.fsum(column) for column in columns)
            # Validation metrics are logged without the split name so monitors stay stable.
            prefix = "val" if stage == "val" else f"test/{split}"
            scores: dict[str, Any] = {
                "loss": loss_sum / ntokens,
                "nll": nll_sum / ntokens,
                "ppl": math.exp(min(nll_sum / ntokens, 50.0)),
            }
            hypotheses = self._gather(self._hypotheses.pop(key, {}))
            self.last_hypotheses[prefix] = hypotheses
            if hypotheses:
                data = self.trainer.datamodule.split_data(split)
                order = sorted(hypotheses)
                hyps = [hypotheses[i] for i in order]
                refs = [data.examples[i].target for i in order]
                every_ref = [
                    data.examples[i].references or (data.examples[i].target,) for i in order
                ]
                metric = getattr(self.trainer.datamodule.task, "metric", "bleu")
                scores.update(task_scores(metric, hyps, every_ref))
                if stage == "test":
                    self._write_hypotheses(split, hyps, refs)
            # Every rank holds the same reduced sums and gathered hypotheses, so every rank logs
            # the same values (a monitor such as ModelCheckpoint needs them on all ranks).
            for name, value in scores.items():
                if isinstance(value, float):
                    self.log(f"{prefix}/{name}", value, sync_dist=False)
            self.scores[prefix] = scores

    def _gather(self, by_id: dict[int, Any]) -> dict[int, Any]:
        """Merge every rank's ``{example id: value}``; an id two ranks hold is kept once."""
        if not (dist.is_available() and dist.is_initialized()):
            return by_id
        parts: list[dict[int, Any]] = [{} for _ in range(dist.get_world_size())]
        dist.all_gather_object(parts, by_id)
        return {k: v for part in parts for k, v in part.items()}

    def _write_hypotheses(self, split: str, hyps: list[str], refs: list[str]) -> None:
        if self.output_dir is None or not self.trainer.is_global_zero:
            return
        folder = Path(self.output_dir) / "hypotheses"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{split}.hyp.txt").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
        (folder / f"{split}.ref.txt").write_text("".join(r + "\n" for r in refs), encoding="utf-8")

    # -- checkpoints carry what a model needs to run ---------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_metadata(self.run_config, self.tokenizer)
        # The dropout masks to come: with the data position (saved by the train loader) this
        # makes a resumed run repeat, bit for bit on a CPU, the run that was interrupted.
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
        # torch restores saved param groups whole, ``fused`` included: without this a run saved
        # unfused would resume unfused under a fused optimizer object (whose step then breaks
        # with an fp16 grad scaler), and the reverse. The configured value wins.
        keywords = getattr(self.optimizer_factory, "keywords", {})
        if "fused" in keywords:
            for optimizer_state in checkpoint.get("optimizer_states", []):
                for group in optimizer_state.get("param_groups", []):
                    group["fused"] = keywords["fused"]


def _compile_options(compile: Any) -> dict[str, Any] | None:
    """``module.compile``: false (off), true (torch.compile defaults) or its keyword arguments."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return {}
    known = ("fullgraph", "dynamic", "backend", "mode", "options", "disable")
    require(
        isinstance(compile, Mapping) and all(key in known for key in compile),
        "module.compile",
        f"must be true, false or torch.compile options among {list(known)}, got {compile!r}",
    )
    modes = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    mode = compile.get("mode")
    require(mode in modes, "module.compile.mode", f"must be one of {modes}, got {mode!r}")
    return OmegaConf.to_container(compile) if isinstance(compile, DictConfig) else dict(compile)


def _check_compile_backend(backend: Any) -> None:
    # Checked when compiling, not when the module is built: evaluation rebuilds the module from
    # the training config and must not need the training machine's backends.
    if isinstance(backend, str):
        import torch._dynamo

        backends = torch._dynamo.list_backends(exclude_tags=())
        require(
            backend in backends, "module.compile.backend", f"unknown backend; known: {backends}"
        )


def _is_compiled(model: nn.Module) -> bool:
    return getattr(model, "_compiled_call_impl", None) is not None
