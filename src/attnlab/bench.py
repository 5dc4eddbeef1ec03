"""``attnlab-bench``: how fast attnlab trains and decodes, next to reference implementations.

Every figure is measured in one process with the variants interleaved step by step: this
machine's speed drifts by ±20% between runs (and within one), so only ratios taken side by side
are honest. Each row is the median of its samples with their spread (IQR and min-max). Timing
starts after ``warmup`` untimed steps (training: at least one on every distinct batch), or more
(up to ``warmup_max``) while a variant's heap is still growing into fresh memory (page faults,
or on CUDA a growing allocator pool): the steady state is what is compared. Sections
(``sections=[...]`` in conf/bench.yaml):

- ``train``: training-step throughput (non-padding source + target tokens/s of forward,
  backward and an Adam step) of attnlab's Transformer, of transformers' ``MarianMTModel`` built
  from an equivalent ``MarianConfig`` (random init) and of ``torch.nn.Transformer`` with its own
  embeddings and output projection: equal sizes, fp32, the same dropout, tied sinusoidal
  embeddings and the same label-smoothed loss. One group per Transformer config (``model``
  and every ``extra_models`` entry). ``precision=bf16-mixed`` runs every section under bf16
  autocast instead (as ``trainer.precision=bf16-mixed``), its MFU against a bf16 matmul peak.
  A ``speedup/<group>/<variant>`` row gives attnlab's speed over each other variant step by
  step (both on the same batch, back to back): steadier than the ratio of two medians.
- ``rnn``: the same for attnlab's RNN (``rnn_model``) vs a plain ``nn.LSTM`` encoder-decoder of
  equal embedding size, hidden size and depth (no attention, no input feeding).
- ``flops``: model FLOP/s by attnlab.flops' rule, 6 x weights x tokens, for every training row,
  and its share (MFU) of this machine's matmul peak in the bench's precision (fp32, or bf16),
  measured here with the same threads: the best rate of matmuls run on their own and of a
  probe run between the training rounds, so a peak taken in a slow moment cannot flatter MFU.
- ``beam``: beam-search sentences/s, attnlab vs transformers' ``generate``, both forced to
  produce exactly ``beam.new_tokens`` tokens so they do the same number of decoder steps.
- ``greedy_cache``: attnlab greedy search with its KV cache vs re-running the teacher-forced
  decoder over the whole prefix at every step.
- ``padding``: padding share of attnlab's token-budget batches on the real training data vs
  fixed-size random batches of the same mean sentence count, and the milliseconds it takes to
  plan an epoch of those batches (``data/epoch_plan``).
- ``data``: batches/s the DataModule's train dataloader produces vs steps/s training consumes.

All figures go to ``output`` (JSON); ``compare=old.json`` prints new/old for every row.
Torch, transformers and the models are imported inside the functions, so ``--help`` is quick.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from attnlab.cli import hydra_app
from attnlab.data.tokenizer import BOS, EOS, PAD

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from attnlab.data.datamodule import Batch, TokenizedSplit

log = logging.getLogger("attnlab.bench")

SECTIONS = ("train", "rnn", "flops", "beam", "greedy_cache", "padding", "data")
HF_MISSING = (
    "transformers is not installed: the Hugging Face (Marian) rows are skipped "
    "(pip install 'attnlab[bench]')"
)


# ------------------------------------------------------------------------------------ results
@dataclass
class Row:
    """One figure: its samples, summarised by median and spread; ``ref`` names the row it is
    divided by in the ratio column (e.g. the attnlab row of the same group)."""

    name: str
    unit: str
    samples: list[float]
    ref: str | None = None
    note: str = ""

    def summary(self) -> dict[str, Any]:
        import numpy as np

        q1, median, q3 = np.percentile(self.samples, [25, 50, 75]).tolist()
        return {
            "median": median,
            "q1": q1,
            "q3": q3,
            "min": min(self.samples),
            "max": max(self.samples),
            "n": len(self.samples),
            "unit": self.unit,
            "ref": self.ref,
            "note": self.note,
            "samples": self.samples,
        }


@dataclass
class TrainRun:
    """What the flops section needs from a training comparison: tokens and time of every step."""

    key: str  # "<group>/<variant>", e.g. "model/attnlab"
    ref: str  # the key of the attnlab variant of the same group
    per_token: tuple[int, int]  # attnlab.flops.weights_per_token of the model's math
    tokens: list[tuple[int, int]]  # (source, target) non-padding tokens of each timed step
    seconds: list[float]


@dataclass
class Bench:
    """The state sections share: config, device, the rows so far, and what is costly to make."""

    cfg: DictConfig
    device: Any
    rows: dict[str, Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    train_runs: list[TrainRun] = field(default_factory=list)
    # GFLOP/s of the matmul probe run after every timed training round of every group
    peak_between_rounds: list[float] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def bf16(self) -> bool:
        return self.cfg.precision == "bf16-mixed"

    @property
    def dtype(self) -> Any:
        """The matmul peak's dtype: bf16 under precision=bf16-mixed, else fp32."""
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    def autocast(self) -> Any:
        """bf16 autocast on the bench's device under precision=bf16-mixed; else a no-op."""
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def add(self, row: Row) -> None:
        self.rows[row.name] = row

    def note(self, text: str) -> None:
        if text not in self.notes:
            log.warning(text)
            self.notes.append(text)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


# ------------------------------------------------------------------------------------- timing
def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` (after the device has finished) and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


SETTLED_FAULTS = 1024  # minor page faults a warm call may still take (4 MiB in 4 KiB pages)


def minor_page_faults() -> int | None:
    """This process's minor page faults so far (None where the platform does not count them)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def cuda_reserved(device: Any) -> int | None:
    """Bytes the CUDA caching allocator holds on ``device`` (None off CUDA): it grows while a
    variant still meets new tensor sizes, as a CPU heap does."""
    import torch

    return torch.cuda.memory_reserved(device) if device.type == "cuda" else None


def took_fresh_memory(call: Callable[[], Any], device: Any) -> tuple[bool | None, Any]:
    """Whether ``call()`` took fresh memory (more than ``SETTLED_FAULTS`` minor page faults, or
    a larger CUDA pool; None where neither can be seen), and its result."""
    faults, reserved = minor_page_faults(), cuda_reserved(device)
    result = call()
    grew = [minor_page_faults() - faults > SETTLED_FAULTS] if faults is not None else []
    if reserved is not None:
        grew.append(cuda_reserved(device) > reserved)
    return (any(grew) if grew else None), result


@dataclass
class Interleaved:
    seconds: dict[str, list[float]]  # per name, one per timed round
    last: dict[str, Any]  # each name's result of the last round
    warmup: int  # untimed rounds run first
    settled: bool | None  # the last warm-up round's calls took no fresh memory (None: no
    # warm-up, or neither page faults nor a CUDA pool to watch)

    @property
    def timed_rounds(self) -> range:
        """The ``round`` arguments of the timed calls, in order."""
        return range(self.warmup, self.warmup + len(next(iter(self.seconds.values()))))

    def warmup_note(self, unit: str) -> str:
        """E.g. "4 warm-up steps"; ``unit`` is plural ("steps", "runs")."""
        unit = unit.removesuffix("s") if self.warmup == 1 else unit
        return f"{self.warmup} warm-up {unit}" + (
            " (still taking fresh memory)" if self.settled is False else ""
        )


def interleave(
    names: list[str],
    warmup: int,
    rounds: int,
    run: Callable[[str, int], Any],
    device: Any,
    max_warmup: int | None = None,
    between_rounds: Callable[[int], Any] | None = None,
) -> Interleaved:
    """Seconds of ``run(name, round)`` per name over ``rounds`` timed rounds (after ``warmup``
    untimed ones), the names taking turns call by call so a drift in machine speed hits them all
    alike. The first name rotates every round, so none always runs with the warmest caches.

    After ``warmup`` rounds (if any), the warm-up goes on, up to ``max_warmup`` rounds, while a
    call of the last round took fresh memory (:func:`took_fresh_memory`): that variant's heap
    was still growing, a one-off cost that falls on one variant and not another.
    (transformers' Marian took 48-184k faults in each of its first five training steps on the
    bench's batches, 92-113 ms of them in its loss gradient alone; attnlab none after its
    first: loss_page_faults.log in outputs/measured/2026-12-07_s21_zen3.) A variant that
    faults on every call (glibc maps very large blocks afresh each time) runs the warm-up to
    ``max_warmup``, and ``settled`` says so. On CUDA a growing caching-allocator pool counts
    too.

    ``between_rounds(round)``, if given, runs after every round, untimed and unwatched: after
    the round's last call, before the next round's first, which rotates with the rounds."""
    max_warmup = warmup if max_warmup is None else max(warmup, max_warmup)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, Any] = {}
    warmed, warming, settled, r = 0, warmup > 0, None, 0
    while len(seconds[names[0]]) < rounds:
        shift = r % len(names)
        took, grew = {}, []
        for name in names[shift:] + names[:shift]:
            call = functools.partial(timed, functools.partial(run, name, r), device)
            fresh, (took[name], last[name]) = took_fresh_memory(call, device)
            grew.append(fresh)
        calm = not any(grew)
        if between_rounds is not None:
            between_rounds(r)
        if warming:
            warmed += 1
            settled = None if grew[-1] is None else calm
            warming = warmed < warmup or (not calm and warmed < max_warmup)
        else:
            for name in names:
                seconds[name].append(took[name])
        r += 1
    return Interleaved(seconds, last, warmed, settled)


# ----------------------------------------------------------------------------------- batches
def random_split(n: int, cfg: DictConfig, vocab: int, rng: np.random.Generator) -> TokenizedSplit:
    """``n`` random sentence pairs: source lengths uniform in [min_len, max_len], each target's
    its source's plus rounded Gaussian noise (``target_length_noise``), clipped to that range,
    so that a batch pads as a real translation batch does."""
    import numpy as np

    from attnlab.data.datamodule import TokenizedSplit

    source_lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=n)
    noise = np.rint(rng.normal(0.0, cfg.target_length_noise, size=n)).astype(int)
    target_lengths = np.clip(source_lengths + noise, cfg.min_len, cfg.max_len)

    def sentences(lengths: np.ndarray) -> list[np.ndarray]:
        return [rng.integers(EOS + 1, vocab, size=int(k)).astype("int32") for k in lengths]

    return TokenizedSplit("synthetic", [], sentences(source_lengths), sentences(target_lengths))


def synthetic_batches(cfg: DictConfig) -> list[Batch]:
    """``cfg.batches`` training batches packed by attnlab's own token-budget sampler, so they are
    shaped (rows x padded length) as a real ``max_tokens`` batch is."""
    import numpy as np

    from attnlab.data.batching import TokenBudgetBatchSampler

    rng = np.random.default_rng(cfg.seed)
    most_rows = cfg.max_tokens // (cfg.min_len + 1) + 1
    split = random_split(cfg.batches * most_rows, cfg, cfg.vocab, rng)
    sampler = TokenBudgetBatchSampler(split.lengths(), cfg.max_tokens, seed=cfg.seed)
    return [split.collate(rows) for rows in itertools.islice(sampler, cfg.batches)]


def source_batch(cfg: DictConfig, batch_size: int) -> Batch:
    """A decoding batch: ``batch_size`` random sources of Multi30k-like lengths."""
    import numpy as np

    split = random_split(batch_size, cfg, cfg.vocab, np.random.default_rng(cfg.seed + 1))
    return split.collate(list(range(batch_size)))


def to_device(batch: Batch, device: Any) -> Batch:
    if device.type == "cpu":
        return batch
    return replace(
        batch,
        src=batch.src.to(device),
        src_pad_mask=batch.src_pad_mask.to(device),
        tgt_in=batch.tgt_in.to(device),
        tgt_out=batch.tgt_out.to(device),
    )


def token_counts(batch: Batch) -> tuple[int, int]:
    return int(batch.num_source_tokens), int(batch.num_target_tokens)


# ------------------------------------------------------------------------------------ models
def transformer_configs(bench: Bench) -> dict[str, DictConfig]:
    """The Transformer groups: ``model`` and every ``extra_models`` entry, by row prefix."""
    nodes = {"model": bench.cfg.model, **(bench.cfg.get("extra_models") or {})}
    for group, node in list(nodes.items()):
        if not str(node.get("_target_", "")).endswith(".Transformer"):
            bench.note(
                f"{group} is not a Transformer: not in the Transformer sections (rnn_model=...)"
            )
            del nodes[group]
    return nodes


def build_attnlab(node: DictConfig, vocab: int, device: Any, seed: int) -> nn.Module:
    import torch

    from attnlab.config import build

    torch.manual_seed(seed)
    return build(node, "model", src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=PAD).to(device)


def marian_unsupported(node: DictConfig) -> list[str]:
    """What a MarianConfig cannot express of this attnlab Transformer config."""
    checks = {
        "norm_position=pre (Marian is post-LN)": node.get("norm_position", "post") != "post",
        "learned positions (Marian's are sinusoidal)": node.get("positional") != "sinusoidal",
        "d_k/d_v other than d_model/heads": node.get("d_k") is not None
        or node.get("d_v") is not None,
        "untied embeddings": not (node.get("share_embeddings") and node.get("tie_output")),
        "feature-frame input (speech)": node.get("input_dim") is not None,
        "a CTC head": bool(node.get("ctc_head")),
    }
    return [what for what, bad in checks.items() if bad]


def build_marian(node: DictConfig, vocab: int, device: Any, seed: int) -> nn.Module:
    """transformers' MarianMTModel, randomly initialised, shaped and regularised as ``node``:
    post-LN, ReLU, sinusoidal positions, scaled and tied embeddings, the same dropouts."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=vocab,
        decoder_vocab_size=vocab,
        d_model=node.d_model,
        encoder_layers=node.n_encoder_layers,
        decoder_layers=node.n_decoder_layers,
        encoder_attention_heads=node.n_heads,
        decoder_attention_heads=node.n_heads,
        encoder_ffn_dim=node.d_ff,
        decoder_ffn_dim=node.d_ff,
        dropout=node.dropout,
        attention_dropout=node.attention_dropout,
        activation_dropout=node.activation_dropout,
        activation_function="relu",
        max_position_embeddings=node.max_positions,
        scale_embedding=node.scale_embeddings,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
        forced_eos_token_id=None,
    )
    torch.manual_seed(seed)
    return MarianMTModel(config).to(device)


def build_torch_transformer(node: DictConfig, vocab: int, device: Any, seed: int) -> nn.Module:
    """``torch.nn.Transformer`` with the embeddings, positions and tied output projection attnlab
    uses; its attention and feed-forward dropouts are set to attnlab's values (nn.Transformer
    applies its one ``dropout`` there too). nn.Transformer adds a final LayerNorm to each stack
    even post-LN: 2 x d_model x 2 weights more, nothing in the FLOP count."""
    import math

    import torch
    from torch import nn

    from attnlab.models.positional import SinusoidalPositions

    # Defined here, not at module level, so importing attnlab.bench does not import torch.
    class TorchTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d_model = node.d_model
            self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
            nn.init.normal_(self.embed.weight, std=d_model**-0.5)
            self.scale = math.sqrt(d_model) if node.scale_embeddings else 1.0
            self.positions = SinusoidalPositions(d_model, node.max_positions)
            self.dropout = nn.Dropout(node.dropout)
            self.transformer = nn.Transformer(
                d_model,
                node.n_heads,
                node.n_encoder_layers,
                node.n_decoder_layers,
                node.d_ff,
                node.dropout,
                activation="relu",
                batch_first=True,
                norm_first=node.norm_position == "pre",
            )
            for layer in [*self.transformer.encoder.layers, *self.transformer.decoder.layers]:
                layer.self_attn.dropout = node.attention_dropout
                if hasattr(layer, "multihead_attn"):
                    layer.multihead_attn.dropout = node.attention_dropout
                layer.dropout.p = node.activation_dropout  # between linear1 and linear2
            self.output_proj = nn.Linear(d_model, vocab, bias=False)
            self.output_proj.weight = self.embed.weight

        def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.embed(tokens) * self.scale + self.positions(tokens.size(1))
            return self.dropout(x)

        def forward(
            self, src: torch.Tensor, src_pad_mask: torch.Tensor, tgt_in: torch.Tensor
        ) -> torch.Tensor:
            length = tgt_in.size(1)
            causal = torch.ones(length, length, dtype=torch.bool, device=src.device).triu(1)
            hidden = self.transformer(
                self._embed(src),
                self._embed(tgt_in),
                tgt_mask=causal,
                src_key_padding_mask=src_pad_mask,
                memory_key_padding_mask=src_pad_mask,
                tgt_is_causal=True,
            )
            return self.output_proj(hidden)

    torch.manual_seed(seed)
    return TorchTransformer().to(device)


def build_plain_lstm(node: DictConfig, vocab: int, device: Any, seed: int) -> nn.Module:
    """An ``nn.LSTM`` encoder-decoder of ``node``'s embedding size, hidden size and depth (a
    bidirectional encoder gets half the hidden size per direction, as in LuongRNN), without
    attention or input feeding: each side is one fused call over the whole sequence."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    from attnlab.models.recurrent import run_recurrent

    dirs = 2 if node.get("bidirectional", False) else 1
    hidden, embed_dim = node.hidden_size, node.embed_dim
    enc_layers, dec_layers = node.encoder_layers, node.decoder_layers

    # Defined here, not at module level, so importing attnlab.bench does not import torch.
    class PlainLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed_dim, padding_idx=PAD)
            self.dropout = nn.Dropout(node.dropout)
            self.encoder = nn.LSTM(
                embed_dim,
                hidden // dirs,
                enc_layers,
                batch_first=True,
                bidirectional=dirs == 2,
                dropout=node.dropout if enc_layers > 1 else 0.0,
            )
            self.decoder = nn.LSTM(
                embed_dim,
                hidden,
                dec_layers,
                batch_first=True,
                dropout=node.dropout if dec_layers > 1 else 0.0,
            )
            self.output_proj = nn.Linear(hidden, vocab)
            if node.get("tie_output") and hidden == embed_dim:
                self.output_proj.weight = self.embed.weight

        def _bridge(self, state: torch.Tensor) -> torch.Tensor:
            """``[layers * dirs, B, H / dirs]`` -> the decoder's ``[dec_layers, B, H]``."""
            state = state.view(enc_layers, dirs, *state.shape[1:])
            state = torch.cat(list(state.unbind(1)), dim=-1)
            if enc_layers >= dec_layers:
                return state[-dec_layers:].contiguous()
            pad = state.new_zeros(dec_layers - enc_layers, *state.shape[1:])
            return torch.cat([pad, state])

        def forward(
            self, src: torch.Tensor, src_pad_mask: torch.Tensor, tgt_in: torch.Tensor
        ) -> torch.Tensor:
            lengths = (~src_pad_mask).sum(1).cpu()
            packed = pack_padded_sequence(
                self.dropout(self.embed(src)), lengths, batch_first=True, enforce_sorted=False
            )
            # run_recurrent: where oneDNN has no bf16 LSTM (no AVX-512), bf16 autocast fails
            # in nn.LSTM; both RNN variants then run their LSTMs in fp32 alike.
            _, (h, c) = run_recurrent(self.encoder, packed)
            output, _ = run_recurrent(
                self.decoder,
                self.dropout(self.embed(tgt_in)),
                (self._bridge(h), self._bridge(c)),
            )
            return self.output_proj(self.dropout(output))

    torch.manual_seed(seed)
    return PlainLSTM().to(device)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def transformers_module(bench: Bench) -> Any:
    """transformers, or None (with a note) when it is not installed or not wanted."""
    if not bench.cfg.huggingface:
        return None
    try:
        import transformers
    except ImportError:
        bench.note(HF_MISSING)
        return None
    return transformers


def marian_for(bench: Bench, group: str, node: DictConfig, vocab: int) -> nn.Module | None:
    """The Marian twin of a Transformer config, or None (with a note) when there is none."""
    if transformers_module(bench) is None:
        return None
    unsupported = marian_unsupported(node)
    if unsupported:
        bench.note(f"{group}: no Marian twin ({', '.join(unsupported)}); Marian rows skipped")
        return None
    return build_marian(node, vocab, bench.device, bench.cfg.seed)


# ---------------------------------------------------------------------------------- training
@dataclass
class Variant:
    """One implementation under training: its model, how it maps a batch to logits, its Adam.
    ``real_tokens_only``: the logits are those of the batch's ``target_positions`` (attnlab
    models skip the padding, as attnlab-train runs them); otherwise ``[B, T, V]``."""

    name: str
    model: nn.Module
    logits: Callable[[Batch], torch.Tensor]
    optimizer: Any = None
    real_tokens_only: bool = False


def variant(name: str, model: nn.Module, lr: float, logits: Callable | None = None) -> Variant:
    """An attnlab model as attnlab-train runs it, or a reference model with its ``logits``."""
    import torch

    model.train()
    # Fused, as optim=noam gives attnlab-train; every variant gets the same optimizer.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9, fused=device_supports_fused(model)
    )
    if logits is not None:
        return Variant(name, model, logits, optimizer)
    real_logits = lambda b: model(b.src, b.src_pad_mask, b.tgt_in, b.target_positions)  # noqa: E731
    return Variant(name, model, real_logits, optimizer, real_tokens_only=True)


def padded_logits(model: nn.Module) -> Callable[[Batch], torch.Tensor]:
    """``[B, T, V]`` logits of a reference model that takes ``(src, src_pad_mask, tgt_in)``."""
    return lambda b: model(b.src, b.src_pad_mask, b.tgt_in)


def marian_logits(model: nn.Module) -> Callable[[Batch], torch.Tensor]:
    def logits(b: Batch) -> torch.Tensor:
        mask = (~b.src_pad_mask).long()
        return model(
            input_ids=b.src, attention_mask=mask, decoder_input_ids=b.tgt_in, use_cache=False
        ).logits

    return logits


def device_supports_fused(model: nn.Module) -> bool:
    return next(model.parameters()).device.type in ("cpu", "cuda")


def train_step(v: Variant, batch: Batch, criterion: nn.Module) -> None:
    """What attnlab-train does per batch: loss per target token, backward, Adam."""
    v.optimizer.zero_grad(set_to_none=True)
    positions = batch.target_positions if v.real_tokens_only else None
    loss_sum, _ = criterion(v.logits(batch), batch.tgt_out, target_positions=positions)
    (loss_sum / batch.num_target_tokens).backward()
    v.optimizer.step()


def criterion_for(cfg: DictConfig) -> nn.Module:
    from attnlab.losses import LabelSmoothedCrossEntropy

    return LabelSmoothedCrossEntropy(cfg.label_smoothing, ignore_index=PAD)


def compare_training(
    bench: Bench,
    group: str,
    variants: list[Variant],
    per_token: Callable[[Variant], tuple[int, int]],
) -> None:
    """Train every variant on the same batches, step by step in turn; add a tokens/s row each.
    With the flops section on, a matmul probe runs after every round too, so MFU's peak is
    sampled in the same stretch of time as the steps it divides."""
    cfg = bench.cfg
    batches = bench.cached("batches", lambda: synthetic_batches(cfg))
    batches = [to_device(b, bench.device) for b in batches]
    criterion = criterion_for(cfg)
    by_name = {v.name: v for v in variants}
    probe_rates: dict[int, float] = {}  # by round
    # Between rounds, not as a turn in them: the variant that runs after the probe (its caches
    # flushed, the CPU at full matmul power) then rotates with the round's first.
    matmul_probe = MatmulProbe(cfg.peak.sizes, bench.device, bench.dtype, onednn_peak(bench))

    def probe(r: int) -> None:
        probe_rates[r] = matmul_probe()

    # Every batch shape once before timing: a round can look settled (no fresh memory) just
    # before a larger batch, not yet seen, makes a heap grow again.
    warmup = max(cfg.warmup, len(batches))
    timing = interleave(
        list(by_name),
        warmup,
        cfg.steps,
        lambda name, r: train_step(by_name[name], batches[r % len(batches)], criterion),
        bench.device,
        max_warmup=cfg.warmup_max,
        between_rounds=probe if "flops" in cfg.sections else None,
    )
    seconds = timing.seconds
    steps = timing.timed_rounds
    bench.peak_between_rounds += [probe_rates[r] for r in steps if r in probe_rates]
    tokens = [token_counts(batches[r % len(batches)]) for r in steps]
    ref = f"{group}/{variants[0].name}"
    for v in variants:
        key = f"{group}/{v.name}"
        rates = [(s + t) / sec for (s, t), sec in zip(tokens, seconds[v.name], strict=True)]
        note = f"{n_params(v.model) / 1e6:.2f}M params; {timing.warmup_note('steps')}"
        bench.add(
            Row(f"train/{key}", "tokens/s", rates, None if key == ref else f"train/{ref}", note)
        )
        bench.train_runs.append(TrainRun(key, ref, per_token(v), tokens, seconds[v.name]))
    # The ratio of two medians swings with whichever steps ran in a slow moment; the ratio taken
    # step by step (both variants on the same batch, back to back) is the steadier figure.
    first = variants[0].name
    for v in variants[1:]:
        speedup = [t / f for t, f in zip(seconds[v.name], seconds[first], strict=True)]
        note = f"{first}'s speed over {v.name}'s, step by step on the same batch"
        bench.add(Row(f"speedup/{group}/{v.name}", f"x {v.name}", speedup, None, note))


def section_train(bench: Bench) -> None:
    from attnlab.flops import weights_per_token

    cfg = bench.cfg
    for group, node in transformer_configs(bench).items():
        attnlab = build_attnlab(node, cfg.vocab, bench.device, cfg.seed)
        variants = [variant("attnlab", attnlab, cfg.lr)]
        marian = marian_for(bench, group, node, cfg.vocab)
        if marian is not None:
            variants.append(variant("marian", marian, cfg.lr, marian_logits(marian)))
        if cfg.torch_baseline:
            model = build_torch_transformer(node, cfg.vocab, bench.device, cfg.seed)
            variants.append(variant("torch", model, cfg.lr, padded_logits(model)))
        # Model FLOPs: the same math whichever code runs it, so attnlab's count for all three.
        same = weights_per_token(attnlab)
        compare_training(bench, group, variants, lambda v, same=same: same)


def section_rnn(bench: Bench) -> None:
    from attnlab.flops import weights_per_token

    cfg = bench.cfg
    rnn = build_attnlab(cfg.rnn_model, cfg.vocab, bench.device, cfg.seed)
    variants = [variant("attnlab", rnn, cfg.lr)]
    if cfg.torch_baseline:
        lstm = build_plain_lstm(cfg.rnn_model, cfg.vocab, bench.device, cfg.seed)
        variants.append(variant("lstm", lstm, cfg.lr, padded_logits(lstm)))
    # Different models (the plain LSTM has no attention): each is counted on its own weights.
    compare_training(bench, "rnn", variants, lambda v: weights_per_token(v.model))


# ------------------------------------------------------------------------------------- flops
class MatmulProbe:
    """One ``torch.mm`` of each size into memory allocated once (so, after its first call,
    it takes no fresh memory), and with ``onednn`` one oneDNN product of each size too; a call
    returns the best GFLOP/s of them. Run between training rounds: a peak measured only once,
    in a slow moment, made MFU read 85% on a machine whose matmuls run at 180 GFLOP/s
    (bench_train_settled2_32-true.log in outputs/measured/2026-12-07_s21_zen3). oneDNN too
    where the peak counts it: on a Zen 5 it ran at twice ``torch.mm``'s rate, so a probe of
    ``torch.mm`` alone could never catch a low oneDNN peak."""

    def __init__(self, sizes: list[int], device: Any, dtype: Any, onednn: bool = False) -> None:
        self.sizes, self.device, self.dtype, self.onednn = list(sizes), device, dtype, onednn
        self.operands: list[tuple[torch.Tensor, ...]] = []  # made at the first call

    def __call__(self) -> float:
        import torch

        if not self.operands:
            self.operands = [
                tuple(torch.randn(n, n, device=self.device, dtype=self.dtype) for _ in range(3))
                for n in self.sizes
            ]
        from attnlab.models.linear import linear_onednn

        best = 0.0
        for a, b, out in self.operands:
            products = [functools.partial(torch.mm, a, b, out=out)]
            if self.onednn:
                products.append(functools.partial(linear_onednn, a, b))
            for product in products:
                elapsed, _ = timed(product, self.device)
                best = max(best, 2 * a.shape[0] ** 3 / elapsed / 1e9)
        return best


def matmul_peak(
    size: int, repeats: int, device: Any, dtype: Any = None, backend: str = "torch"
) -> list[float]:
    """GFLOP/s of ``size``-square matmuls in ``dtype`` (fp32 by default), one sample per repeat
    (after one warm-up): ``torch.mm`` (``backend="torch"``), or the oneDNN path attnlab's fp32
    CPU linear layers take (``"onednn"``)."""
    import torch

    from attnlab.models.linear import linear_onednn

    dtype = dtype or torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(size, size, device=device, dtype=dtype)
    product = (
        (lambda: linear_onednn(a, b)) if backend == "onednn" else lambda: torch.mm(a, b, out=out)
    )
    rates = []
    for i in range(repeats + 1):
        elapsed, _ = timed(product, device)
        if i:
            rates.append(2 * size**3 / elapsed / 1e9)
    return rates


def onednn_peak(bench: Bench) -> bool:
    """fp32 on a CPU: oneDNN's kernels (which attnlab's linear layers may use) can beat
    torch.mm's BLAS; the machine's peak is the best of both, or MFU would be flattered."""
    from attnlab.models.linear import onednn_available

    return not bench.bf16 and bench.device.type == "cpu" and onednn_available()


def section_flops(bench: Bench) -> None:
    import torch

    from attnlab.flops import training_flops

    cfg = bench.cfg
    dtype = bench.dtype
    precision = "bf16" if bench.bf16 else "fp32"
    backends = ["torch", "onednn"] if onednn_peak(bench) else ["torch"]
    # The best rate over several sizes: which size runs fastest differs between machines (on
    # one, 512^2 ran at 165 GFLOP/s and 2048^2 at 125-149), and a low peak would flatter MFU.
    sizes = ", ".join(f"{size}^2" for size in cfg.peak.sizes)
    peak = 0.0
    for backend in backends:
        samples = [
            rate
            for size in cfg.peak.sizes
            for rate in matmul_peak(size, cfg.peak.repeats, bench.device, dtype, backend)
        ]
        peak = max(peak, *samples)
        name = f"flops/peak_{precision}_matmul" + ("_onednn" if backend == "onednn" else "")
        how = "oneDNN" if backend == "onednn" else "torch.mm"
        note = f"{sizes} {how}, {torch.get_num_threads()} threads; MFU uses the best"
        bench.add(Row(name, "GFLOP/s", samples, note=note))
    # The machine's speed drifts: the peak is also the best the probe saw after the training
    # rounds, so a peak taken in a slow moment cannot flatter MFU.
    if bench.peak_between_rounds:
        peak = max(peak, *bench.peak_between_rounds)
        how = "torch.mm and oneDNN" if onednn_peak(bench) else "torch.mm"
        note = f"{sizes} {how} after every training round; MFU uses the best"
        name = f"flops/peak_{precision}_matmul_between_rounds"
        bench.add(Row(name, "GFLOP/s", bench.peak_between_rounds, note=note))
    if not bench.train_runs:
        bench.note("flops: no train or rnn section ran, so only the matmul peak is reported")
    for run in bench.train_runs:
        gflops = [
            training_flops(s, t, run.per_token) / sec / 1e9
            for (s, t), sec in zip(run.tokens, run.seconds, strict=True)
        ]
        ref = None if run.key == run.ref else run.ref
        weights = f"{run.per_token[0] / 1e6:.2f}M + {run.per_token[1] / 1e6:.2f}M weights/token"
        bench.add(Row(f"flops/{run.key}", "GFLOP/s", gflops, ref and f"flops/{ref}", weights))
        mfu = [100 * g / peak for g in gflops]
        note = f"of {peak:.1f} GFLOP/s, the best matmul rate the bench saw"
        bench.add(Row(f"mfu/{run.key}", "% of peak", mfu, ref and f"mfu/{ref}", note))


# ---------------------------------------------------------------------------------- decoding
def attnlab_search(model: nn.Module, batch: Batch, strategy: str, new_tokens: int, **kw) -> int:
    """attnlab search forced to ``new_tokens`` decoder steps: eos is banned until the last step
    and forced there, so every hypothesis is ``new_tokens - 1`` tokens and eos. Returns the
    number of new tokens of the first sentence (to check both sides decoded as many)."""
    from attnlab.decoding import generate

    hyps = generate(
        model,
        batch.src,
        batch.src_pad_mask,
        strategy=strategy,
        bos_id=BOS,
        eos_id=EOS,
        max_len_a=0,
        max_len_b=new_tokens - 1,
        min_len=new_tokens - 1,
        **kw,
    )
    return len(hyps[0][0].tokens) + 1  # + eos


def marian_beam(model: nn.Module, batch: Batch, b: DictConfig) -> int:
    """transformers' beam search forced to ``b.new_tokens`` new tokens (eos banned throughout)."""
    import torch

    with torch.no_grad():
        out = model.generate(
            input_ids=batch.src,
            attention_mask=(~batch.src_pad_mask).long(),
            num_beams=b.beam_size,
            max_new_tokens=b.new_tokens,
            min_new_tokens=b.new_tokens,
            length_penalty=b.length_penalty,
            do_sample=False,
            early_stopping=False,
            num_return_sequences=1,
        )
    return out.size(1) - 1  # less the decoder start token


def greedy_without_cache(model: nn.Module, batch: Batch, new_tokens: int) -> int:
    """Greedy decoding the naive way: the full teacher-forced decoder over the whole prefix at
    every step (what the KV cache saves)."""
    import torch

    with torch.no_grad():
        enc = model.encode(batch.src, batch.src_pad_mask)
        prefix = torch.full((batch.src.size(0), 1), BOS, device=batch.src.device)
        for _ in range(new_tokens):
            next_token = model.decode(prefix, enc)[:, -1].argmax(-1)
            prefix = torch.cat([prefix, next_token[:, None]], dim=1)
    return prefix.size(1) - 1


def compare_decoding(
    bench: Bench,
    section: str,
    contenders: dict[str, Callable[[], int]],
    settings: DictConfig,
) -> None:
    """Time the contenders in turn; add a sentences/s row each (ratio to the first)."""
    timing = interleave(
        list(contenders),
        settings.warmup,
        settings.repeats,
        lambda name, r: contenders[name](),
        bench.device,
        max_warmup=bench.cfg.warmup_max,
    )
    seconds, produced = timing.seconds, timing.last
    if len(set(produced.values())) > 1:
        bench.note(f"{section}: unequal new tokens per sentence {produced}; ratios are off")
    first = next(iter(contenders))
    for name in contenders:
        rates = [settings.batch_size / s for s in seconds[name]]
        ref = None if name == first else f"{section}/{first}"
        note = f"batch {settings.batch_size}, {produced[name]} new tokens; "
        note += timing.warmup_note("runs")
        bench.add(Row(f"{section}/{name}", "sentences/s", rates, ref, note))


def section_beam(bench: Bench) -> None:
    cfg, b = bench.cfg, bench.cfg.beam
    batch = to_device(source_batch(cfg, b.batch_size), bench.device)
    for group, node in transformer_configs(bench).items():
        model = build_attnlab(node, cfg.vocab, bench.device, cfg.seed).eval()
        contenders = {
            "attnlab": functools.partial(
                attnlab_search,
                model,
                batch,
                "beam",
                b.new_tokens,
                beam_size=b.beam_size,
                length_penalty=b.length_penalty,
            )
        }
        marian = marian_for(bench, group, node, cfg.vocab)
        if marian is not None:
            contenders["marian"] = functools.partial(marian_beam, marian.eval(), batch, b)
        compare_decoding(bench, f"beam/{group}", contenders, b)


def section_greedy_cache(bench: Bench) -> None:
    cfg, g = bench.cfg, bench.cfg.greedy_cache
    batch = to_device(source_batch(cfg, g.batch_size), bench.device)
    for group, node in transformer_configs(bench).items():
        model = build_attnlab(node, cfg.vocab, bench.device, cfg.seed).eval()
        contenders = {
            "cached": functools.partial(attnlab_search, model, batch, "greedy", g.new_tokens),
            "no_cache": functools.partial(greedy_without_cache, model, batch, g.new_tokens),
        }
        compare_decoding(bench, f"greedy_cache/{group}", contenders, g)


# -------------------------------------------------------------------------------------- data
def missing_train_files(task: Any) -> list[str]:
    """Training files a file-backed task (Multi30k, WMT14, ...) lacks; [] for synthetic ones."""
    directory, files = getattr(task, "directory", None), getattr(task, "files", None)
    if directory is None or not files:
        return []
    return [name for name in files if name.startswith("train.") and not (directory / name).exists()]


def shared_data_dir() -> Path:
    """``shared/data`` beside this checkout, where the tests also look for Multi30k."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def load_datamodule(bench: Bench) -> Any:
    """The DataModule of ``cfg.data`` with its training split tokenised, or None (with a note)
    when its files are absent: the bench never downloads data."""
    from omegaconf import open_dict

    from attnlab.config import build

    data = bench.cfg.data
    task = build(data.task, "data.task")
    missing = missing_train_files(task)
    if missing and "root" in data.task and data.task.root is None and shared_data_dir().is_dir():
        with open_dict(data):  # no root configured: try the checkout's shared data
            data.task.root = str(shared_data_dir())
        task = build(data.task, "data.task")
        missing = missing_train_files(task)
    if missing:
        bench.note(
            f"{task.name}: {', '.join(missing)} not found under {task.directory}; padding and data "
            "sections skipped (set ATTNLAB_DATA_DIR or data.task.root)"
        )
        return None
    datamodule = build(data, "data")
    if hasattr(datamodule.task, "download"):
        datamodule.task.download = False
    datamodule.split_data("train")  # tokeniser and tokenised data: cached after the first run
    return datamodule


def fixed_size_padding(lengths: np.ndarray, size: int, rng: np.random.Generator) -> float:
    """Padding share of batches of ``size`` random examples (the last one smaller)."""
    order = rng.permutation(len(lengths))
    chunks = [lengths[order[i : i + size]] for i in range(0, len(order), size)]
    padded = sum(len(chunk) * int(chunk.max()) for chunk in chunks)
    return 1.0 - float(lengths.sum()) / padded


def tensor_padding(split: Any, batches: Any) -> dict[str, float]:
    """Padding share of the source and target tensors of ``batches`` as ``split`` collates
    them: each side pads to its own longest, which the cost model (the longer side) hides."""
    real, total = {"source": 0, "target": 0}, {"source": 0, "target": 0}
    for rows in batches:
        batch = split.collate(rows)
        real["source"] += int(batch.num_source_tokens)
        total["source"] += batch.src_pad_mask.numel()
        real["target"] += int(batch.num_target_tokens)
        total["target"] += batch.tgt_out.numel()
    return {side: 1.0 - real[side] / max(1, total[side]) for side in real}


def section_padding(bench: Bench) -> None:
    import numpy as np

    from attnlab.data.batching import TokenBudgetBatchSampler

    datamodule = bench.cached("datamodule", lambda: load_datamodule(bench))
    if datamodule is None:
        return
    split = datamodule.split_data("train")
    lengths = split.lengths()
    budget, sizes = [], []
    sampler = TokenBudgetBatchSampler(  # as the DataModule's train loader builds it
        lengths,
        datamodule.max_tokens,
        seed=datamodule.seed,
        max_sentences=datamodule.max_sentences,
        tie_break=split.tie_break(),
    )
    tensors: dict[str, list[float]] = {"source": [], "target": []}
    plan_ms = []
    for epoch in range(bench.cfg.padding.epochs):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        len(sampler)  # shuffles, buckets and cuts the epoch into batches
        plan_ms.append(1e3 * (time.perf_counter() - started))
        budget.append(100 * sampler.padding_fraction())
        sizes.append(len(lengths) / len(sampler))
        for side, share in tensor_padding(split, sampler).items():
            tensors[side].append(100 * share)
    size = max(1, round(float(np.mean(sizes))))
    rng = np.random.default_rng(bench.cfg.seed)
    fixed = [100 * fixed_size_padding(lengths, size, rng) for _ in budget]
    what = (
        f"{datamodule.task.name} train, {len(lengths)} pairs, max_tokens {datamodule.max_tokens};"
        " an example costs max(source, target) + 1 tokens, as in padding_fraction()"
    )
    bench.add(Row("padding/token_budget", "% padding", budget, note=what))
    for side, shares in tensors.items():
        note = f"padded positions of the collated {side} tensors (attention still sees them)"
        bench.add(Row(f"padding/{side}_tensors", "% padding", shares, note=note))
    bench.add(
        Row(
            "padding/random_fixed_size",
            "% padding",
            fixed,
            "padding/token_budget",
            f"{size} sentences per batch (the token-budget mean)",
        )
    )
    note = f"planning an epoch's token-budget batches of {len(lengths)} pairs"
    bench.add(Row("data/epoch_plan", "ms", plan_ms, note=note))


def endless(loader: Any) -> Any:
    """The loader's batches epoch after epoch, as training sees them."""
    for epoch in itertools.count():
        loader.batch_sampler.set_epoch(epoch)
        yield from loader


def section_data(bench: Bench) -> None:
    cfg = bench.cfg
    datamodule = bench.cached("datamodule", lambda: load_datamodule(bench))
    if datamodule is None:
        return
    vocab = datamodule.tokenizer.vocab_size
    model = build_attnlab(cfg.model, vocab, bench.device, cfg.seed)
    trainee, criterion = variant("attnlab", model, cfg.lr), criterion_for(cfg)
    batches = endless(datamodule.train_dataloader())
    load, step = [], []
    for i in range(cfg.data_loading.warmup + cfg.data_loading.batches):
        load_s, batch = timed(lambda: next(batches), bench.device)
        batch = to_device(batch, bench.device)
        step_s, _ = timed(functools.partial(train_step, trainee, batch, criterion), bench.device)
        if i >= cfg.data_loading.warmup:
            load.append(1 / load_s)
            step.append(1 / step_s)
    workers = f"num_workers={datamodule.num_workers}"
    bench.add(Row("data/loader", "batches/s", load, note=f"{datamodule.task.name}, {workers}"))
    bench.add(
        Row(
            "data/train_step",
            "steps/s",
            step,
            "data/loader",
            "model on real batches; ratio < 1: the loader keeps up",
        )
    )


SECTION_FUNCTIONS: dict[str, Callable[[Bench], None]] = {
    "train": section_train,
    "rnn": section_rnn,
    "flops": section_flops,
    "beam": section_beam,
    "greedy_cache": section_greedy_cache,
    "padding": section_padding,
    "data": section_data,
}


# ----------------------------------------------------------------------------------- output
def fmt(x: float | None) -> str:
    if x is None:
        return ""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def fmt_ratio(r: float) -> str:
    """Two decimals, or two significant digits below 0.1 (the loader's lead read "0.00x")."""
    return f"{r:.2f}" if abs(r) >= 0.1 else f"{r:.2g}"


def ratio(rows: dict[str, dict], row: dict) -> float | None:
    ref = rows.get(row["ref"]) if row["ref"] else None
    return row["median"] / ref["median"] if ref and ref["median"] else None


def results_table(rows: dict[str, dict]) -> str:
    lines = [
        "| row | median | IQR | min - max | unit | ratio | note |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for name, row in rows.items():
        r = ratio(rows, row)
        vs = f"{fmt_ratio(r)}x {row['ref'].rsplit('/', 1)[-1]}" if r is not None else ""
        lines.append(
            f"| {name} | {fmt(row['median'])} | {fmt(row['q1'])} - {fmt(row['q3'])} "
            f"| {fmt(row['min'])} - {fmt(row['max'])} | {row['unit']} | {vs} | {row['note']} |"
        )
    return "\n".join(lines)


def compare_with(rows: dict[str, dict], old_path: str) -> tuple[dict[str, float], str]:
    """new/old median per row found in both files, and that as a Markdown table."""
    old = json.loads(Path(old_path).read_text())["rows"]
    ratios = {
        name: row["median"] / old[name]["median"]
        for name, row in rows.items()
        if name in old and old[name]["median"]
    }
    lines = [
        f"new / old ({old_path}):",
        "",
        "| row | old | new | new/old | unit |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, r in ratios.items():
        lines.append(
            f"| {name} | {fmt(old[name]['median'])} | {fmt(rows[name]['median'])} | {fmt_ratio(r)} "
            f"| {rows[name]['unit']} |"
        )
    for which, names in (("new", set(rows) - set(old)), ("old", set(old) - set(rows))):
        if names:
            lines += ["", f"only in the {which} file: {', '.join(sorted(names))}"]
    return ratios, "\n".join(lines)


def environment(bench: Bench, started_at: float) -> dict[str, Any]:
    import sys

    import torch

    from attnlab.models import linear
    from attnlab.runs import git_dirty, git_sha

    hf = sys.modules.get("transformers")  # its version, where a section used it
    return {
        "started_at": started_at,
        "finished_at": time.time(),
        "git_sha": git_sha(),
        "git_dirty": git_dirty(),
        "device": str(bench.device),
        "device_name": torch.cuda.get_device_name(bench.device)
        if bench.device.type == "cuda"
        else None,
        "precision": bench.cfg.precision,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": getattr(hf, "__version__", None),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu": cpu_identity(),
        "onednn_fp32": linear.onednn_enabled(),
        "onednn_weight_grads": linear.onednn_weight_grads_enabled(),
    }


def cpu_identity() -> dict[str, Any]:
    """Which CPU ran the bench (this project's machines change between runs, and a Zen 3 and a
    Zen 5 both call themselves "AMD EPYC"): /proc/cpuinfo's vendor, family, model and name, and
    the vector extensions that decide which matmul library is faster."""
    from attnlab.cpuinfo import cpu_fields, cpu_flags

    fields, flags = cpu_fields(), cpu_flags()
    vector = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    return {
        "vendor": fields.get("vendor_id"),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "name": fields.get("model name"),
        "vector": [flag for flag in vector if flag in flags],
    }


# -------------------------------------------------------------------------------------- run
def check_config(cfg: DictConfig) -> None:
    from attnlab.config_errors import check_onednn_linear, require

    check_onednn_linear(cfg.onednn_linear)
    unknown = sorted(set(cfg.sections) - set(SECTIONS))
    extra = cfg.get("extra_models") or {}
    require("rnn" not in extra, "extra_models.rnn", "'rnn' names the rnn section's rows")
    require(not unknown, "sections", f"unknown {unknown}; known: {list(SECTIONS)}")
    precisions = ("32-true", "bf16-mixed")
    require(cfg.precision in precisions, "precision", f"{cfg.precision!r}; one of {precisions}")
    require(cfg.vocab > EOS + 1, "vocab", f"must exceed the special ids (> {EOS + 1})")
    require(1 <= cfg.min_len <= cfg.max_len, "min_len", "need 1 <= min_len <= max_len")
    require(cfg.max_tokens > cfg.max_len, "max_tokens", "must hold a sentence of max_len + eos")
    require(cfg.steps >= 1 and cfg.batches >= 1, "steps", "steps and batches must be >= 1")
    for name in ("beam", "greedy_cache"):
        require(cfg[name].new_tokens >= 1, f"{name}.new_tokens", "must be >= 1")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured sections; print the tables; write and return every figure."""
    import torch

    from attnlab.config import register_resolvers
    from attnlab.models.linear import use_onednn
    from attnlab.native import use_native_kernels
    from attnlab.runs import resolved_container
    from attnlab.runtime import keep_freed_memory

    register_resolvers()
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.keep_freed_memory:
        keep_freed_memory()
    use_onednn(cfg.onednn_linear)
    use_native_kernels(cfg.native_kernels)
    bench = Bench(cfg, torch.device(cfg.device))
    started_at = time.time()
    for name in SECTIONS:
        if name in cfg.sections:
            log.info("section %s", name)
            started = time.perf_counter()
            with bench.autocast():
                SECTION_FUNCTIONS[name](bench)
            log.info("section %s took %.1fs", name, time.perf_counter() - started)

    rows = {name: row.summary() for name, row in bench.rows.items()}
    for row in rows.values():
        row["ratio"] = ratio(rows, row)
    result = {
        "meta": environment(bench, started_at),
        "config": resolved_container(cfg),
        "rows": rows,
        "notes": bench.notes,
    }
    print(results_table(rows))
    for text in bench.notes:
        print(f"\nnote: {text}")
    if cfg.compare:
        result["compare"], table = compare_with(rows, cfg.compare)
        print("\n" + table)
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {output}")
    return result


@hydra_app("bench")
def main(cfg: DictConfig) -> None:
    from attnlab.config_errors import ConfigError

    try:
        run(cfg)
    except ConfigError as error:
        log.error("config error: %s", error)
        raise SystemExit(f"attnlab: config error: {error}") from None


if __name__ == "__main__":
    main()
