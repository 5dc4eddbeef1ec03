"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017) as a plain nn.Module.

Section references are to the paper. Every Table 3 knob is a constructor argument: N (layers),
d_model, d_ff, h, d_k, d_v, P_drop, positional encoding; plus the switches users ask for
(pre-/post-LN, three-way weight tying). The model knows nothing of Lightning or data files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.config_errors import require
from attnlab.models.arguments import check_transformer
from attnlab.models.attention import MultiHeadAttention, Packing, packing_for
from attnlab.models.copy import CopyGenerator, check_copy_attention
from attnlab.models.dropout import dropout
from attnlab.models.frontends import CTCHead, build_frontend
from attnlab.models.kv_cache import (
    GrowingKVCache,
    KVCache,
    SelfAttentionCache,
    whole_sentences,
)
from attnlab.models.linear import Linear, matmul_dtype
from attnlab.models.positional import build_positions


class PositionwiseFeedForward(nn.Module):
    """``FFN(x) = max(0, x W_1 + b_1) W_2 + b_2`` (§3.3)."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float = 0.0):
        super().__init__()
        self.w_1 = Linear(d_model, d_ff)
        self.w_2 = Linear(d_ff, d_model)
        self.activation_dropout = activation_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = dropout(self.w_1.forward_relu(x), self.activation_dropout, self.training)
        return self.w_2(hidden)


class Sublayer(nn.Module):
    """Residual connection around a sub-layer with dropout and layer norm (§3.1, §5.4).

    Post-LN (the paper): ``LayerNorm(x + Dropout(Sublayer(x)))``. Pre-LN (Xiong et al. 2020):
    ``x + Dropout(Sublayer(LayerNorm(x)))``, which trains without warm-up tricks at depth.
    """

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = dropout
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return x + dropout(output, self.dropout, self.training)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.pre_norm else x

    def finish(self, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        y = self(x, output)
        return y if self.pre_norm else self.norm(y)


class EncoderLayer(nn.Module):
    def __init__(
        self,
        d_model,
        d_ff,
        n_heads,
        d_k,
        d_v,
        dropout,
        attention_dropout,
        activation_dropout,
        pre_norm,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, d_k, d_v, attention_dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, activation_dropout)
        self.attn_sublayer = Sublayer(d_model, dropout, pre_norm)
        self.ff_sublayer = Sublayer(d_model, dropout, pre_norm)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor, packing: Packing | None = None
    ) -> torch.Tensor:
        attended, _ = self.self_attn(
            self.attn_sublayer.inputs(x), attn_mask=key_mask, packing=packing
        )
        x = self.attn_sublayer.finish(x, attended)
        return self.ff_sublayer.finish(x, self.feed_forward(self.ff_sublayer.inputs(x)))


class DecoderLayer(nn.Module):
    def __init__(
        self,
        d_model,
        d_ff,
        n_heads,
        d_k,
        d_v,
        dropout,
        attention_dropout,
        activation_dropout,
        pre_norm,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, d_k, d_v, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, d_k, d_v, attention_dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, activation_dropout)
        self.self_sublayer = Sublayer(d_model, dropout, pre_norm)
        self.cross_sublayer = Sublayer(d_model, dropout, pre_norm)
        self.ff_sublayer = Sublayer(d_model, dropout, pre_norm)

    def forward(
        self,
        x: torch.Tensor,
        memory_mask: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_cache: SelfAttentionCache | None = None,
        cross_cache: KVCache | None = None,
        packing: Packing | None = None,
        self_qkv: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, SelfAttentionCache | None]:
        # Without a cache the whole target prefix is processed at once under a causal mask
        # (teacher forcing); with one, x is the newest position and sees every cached one.
        attended, self_cache = self.self_attn(
            self.self_sublayer.inputs(x),
            cache=self_cache,
            is_causal=self_cache is None,
            packing=packing,
            stacked_qkv=self_qkv,
        )
        x = self.self_sublayer.finish(x, attended)
        attended, _ = self.cross_attn(
            self.cross_sublayer.inputs(x),
            memory,
            attn_mask=memory_mask,
            cache=cross_cache,
            static_kv=cross_cache is not None,
            packing=packing,
        )
        x = self.cross_sublayer.finish(x, attended)
        x = self.ff_sublayer.finish(x, self.feed_forward(self.ff_sublayer.inputs(x)))
        return x, self_cache


@dataclass
class EncoderOut:
    memory: torch.Tensor  # [B, S, d_model]
    pad_mask: torch.Tensor  # [B, S], True at padding
    src_tokens: torch.Tensor | None = None  # [B, S], kept for a copy layer to point into
    # Each decoder layer's cross-attention keys/values of ``memory``. They depend on the encoder
    # output alone, so they live here and move only with ``reorder_encoder_out`` (when sentences
    # are dropped), not at every beam step: beams of one sentence share them.
    cross_kv: list[KVCache] | None = None
    # Decoder rows per encoder row: beam search's K beams of a sentence share its encoder output
    # (``Transformer.expand_for_beams``) rather than each having a copy.
    beams: int = 1

    @property
    def attn_mask(self) -> torch.Tensor:
        return (~self.pad_mask)[:, None, None, :]


@dataclass
class DecoderState:
    step: int
    self_caches: list[SelfAttentionCache]
    # Per decoder layer, its self-attention's W^Q, W^K, W^V stacked for this decoding's steps
    # (``MultiHeadAttention.stacked_qkv``); None where three matmuls are as fast (fp32, fp64).
    stacked_qkv: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None


class Transformer(nn.Module):
    """Encoder-decoder Transformer (§3). Defaults are the paper's base model."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        d_model: int = 512,
        d_ff: int = 2048,
        n_heads: int = 8,
        d_k: int | None = None,
        d_v: int | None = None,
        n_encoder_layers: int = 6,
        n_decoder_layers: int = 6,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        norm_position: str = "post",
        positional: str = "sinusoidal",
        max_positions: int = 1024,
        share_embeddings: bool = True,
        tie_output: bool = True,
        scale_embeddings: bool = True,
        input_dim: int | None = None,
        frontend: dict | None = None,
        ctc_head: bool = False,
        copy_attention: bool = False,
    ):
        """``input_dim`` None: the source is token ids. An int: the source is feature frames of
        that size (speech), which enter through ``frontend`` (see models/frontends.py) instead of
        an embedding; ``ctc_head`` adds a CTC output layer on the encoder. ``copy_attention``
        mixes the output distribution with a pointer over the source tokens (models/copy.py),
        so ``forward`` and ``decode_step`` return normalised log-probabilities."""
        super().__init__()
        check_transformer(
            d_model=d_model,
            d_ff=d_ff,
            n_heads=n_heads,
            d_k=d_k,
            d_v=d_v,
            n_encoder_layers=n_encoder_layers,
            n_decoder_layers=n_decoder_layers,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            norm_position=norm_position,
            positional=positional,
            max_positions=max_positions,
        )
        d_k = d_k if d_k is not None else d_model // n_heads
        d_v = d_v if d_v is not None else d_model // n_heads
        require(
            input_dim is not None or not share_embeddings or src_vocab_size == tgt_vocab_size,
            "share_embeddings",
            f"needs one joint vocabulary, got source {src_vocab_size} and target {tgt_vocab_size}",
        )
        check_copy_attention(copy_attention, input_dim, src_vocab_size, tgt_vocab_size)

        self.pad_id = pad_id
        self.d_model = d_model
        self.dropout = dropout
        self.embed_scale = math.sqrt(d_model) if scale_embeddings else 1.0
        pre_norm = norm_position == "pre"

        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.frontend = build_frontend(input_dim, d_model, frontend)
        if self.frontend is not None:
            self.src_embed = None
        elif share_embeddings:
            self.src_embed = self.tgt_embed
        else:
            self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.positions = build_positions(positional, d_model, max_positions)
        layer_args = (
            d_model,
            d_ff,
            n_heads,
            d_k,
            d_v,
            dropout,
            attention_dropout,
            activation_dropout,
            pre_norm,
        )
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(*layer_args) for _ in range(n_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(*layer_args) for _ in range(n_decoder_layers)
        )
        # Pre-LN leaves the residual stream un-normalised; a final norm closes each stack.
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.output_proj = Linear(d_model, tgt_vocab_size, bias=False)
        self.ctc = CTCHead(d_model, tgt_vocab_size) if ctc_head else None
        self.copy = CopyGenerator(d_model) if copy_attention else None
        self._reset_parameters()
        if tie_output:  # §3.4: the pre-softmax projection shares the embedding matrix
            self.output_proj.weight = self.tgt_embed.weight

    def _reset_parameters(self) -> None:
        for name, param in self.named_parameters():
            if param.dim() > 1 and "embed" not in name and "positions" not in name:
                nn.init.xavier_uniform_(param)
        for embedding in {self.src_embed, self.tgt_embed} - {None}:
            nn.init.normal_(embedding.weight, mean=0.0, std=self.d_model**-0.5)
            with torch.no_grad():
                embedding.weight[self.pad_id].zero_()

    # -- the pieces -----------------------------------------------------------------------------
    def _embed(
        self, embedding: nn.Embedding, tokens: torch.Tensor, offset: int = 0
    ) -> torch.Tensor:
        x = embedding(tokens) * self.embed_scale + self.positions(tokens.size(1), offset)
        return dropout(x, self.dropout, self.training)

    def _embed_packed(
        self, embedding: nn.Embedding, tokens: torch.Tensor, packing: Packing
    ) -> torch.Tensor:
        """``_embed`` of the real tokens of ``tokens [B, T]`` only: ``[N, d_model]``, then the
        packing's extra rows, if it has any (:class:`Packing`)."""
        table = self.positions(packing.length)
        x = embedding(packing.pack(tokens)) * self.embed_scale + table[packing.positions]
        return dropout(x, self.dropout, self.training)

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor) -> EncoderOut:
        """Runs the layers on the real source positions only (``Packing``); ``memory`` is laid
        out padded, with zeros at the padding."""
        if self.frontend is None:
            packing = Packing.from_mask(~src_pad_mask, packing_for(self.src_embed.weight))
            x = self._embed_packed(self.src_embed, src, packing)
        else:  # feature frames, subsampled; the mask shrinks with them
            x, src_pad_mask = self.frontend(src, src_pad_mask)
            # Scaled like an embedding (as ESPnet's positional encoding does after Conv2d), so
            # the sinusoids do not drown the acoustic features.
            x = x * self.embed_scale + self.positions(x.size(1))
            packing = Packing.from_mask(~src_pad_mask, packing_for(x))
            x = dropout(packing.pack(x), self.dropout, self.training)
        key_mask = (~src_pad_mask)[:, None, None, :]
        for layer in self.encoder_layers:
            x = layer(x, key_mask, packing)
        memory = packing.unpack(self.encoder_norm(x))
        return EncoderOut(memory, src_pad_mask, src if self.copy is not None else None)

    def _output(
        self, x: torch.Tensor, enc: EncoderOut, packing: Packing | None = None
    ) -> torch.Tensor:
        hidden = self.decoder_norm(x)
        if self.copy is None:
            return self.output_proj(hidden)
        if packing is not None:  # the pointer attends over the padded source, row by row
            hidden = packing.unpack(hidden)
        logits = self.output_proj(hidden)
        out = self.copy(logits, hidden, enc.memory, enc.pad_mask, enc.src_tokens)
        return out if packing is None else packing.pack(out)

    def decode(
        self,
        tgt_in: torch.Tensor,
        enc: EncoderOut,
        target_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]``; with ``target_positions`` (flat indices into
        ``B * T``, row by row, each row's a prefix of it: the non-padding targets), ``[N, V]``
        for just those, every position-wise layer having skipped the rest."""
        if target_positions is None:
            packing = None
            x = self._embed(self.tgt_embed, tgt_in)
        else:
            b, t = tgt_in.shape
            packing = Packing.of(target_positions, b, t, packing_for(self.tgt_embed.weight))
            x = self._embed_packed(self.tgt_embed, tgt_in, packing)
        for layer in self.decoder_layers:
            x, _ = layer(x, enc.attn_mask, enc.memory, packing=packing)
        logits = self._output(x, enc, packing)
        return logits if packing is None else packing.real(logits)

    def forward(
        self,
        src: torch.Tensor,
        src_pad_mask: torch.Tensor,
        tgt_in: torch.Tensor,
        target_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` for target inputs ``tgt_in`` (BOS-shifted); with
        ``copy_attention``, log-probabilities. ``target_positions``: see ``decode``."""
        return self.decode(tgt_in, self.encode(src, src_pad_mask), target_positions)

    def ctc_log_probs(self, enc: EncoderOut) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probs ``[B, S, V]`` of the encoder output and their lengths ``[B]``, one row
        per decoder row (repeated for beams that share an encoder row)."""
        if self.ctc is None:
            raise ValueError("this model has no CTC head (model.ctc_head=false)")
        log_probs, lengths = self.ctc(enc.memory, enc.pad_mask)
        if enc.beams > 1:
            log_probs = log_probs.repeat_interleave(enc.beams, dim=0)
            lengths = lengths.repeat_interleave(enc.beams, dim=0)
        return log_probs, lengths

    # -- incremental decoding (see models/interface.py) ----------------------------------------
    def init_decoder_state(self, enc: EncoderOut) -> DecoderState:
        batch = enc.memory.size(0) * enc.beams
        self_caches = [
            GrowingKVCache.empty(
                enc.memory, batch, layer.self_attn.n_heads, layer.self_attn.d_k, layer.self_attn.d_v
            )
            for layer in self.decoder_layers
        ]
        if enc.cross_kv is None:  # projected once per encoder output (a pure function of it)
            enc.cross_kv = [
                layer.cross_attn.project_kv(enc.memory) for layer in self.decoder_layers
            ]
        # In bf16 one matmul of a step's Q, K and V beats three (256 rows: 0.47-0.72 -> 0.34-0.46
        # ms; a whole beam step 1.02x); in fp32 it was no faster, and beam search 4% slower.
        # Decoding with gradients (training through the decoder) keeps the three.
        dtype = matmul_dtype(enc.memory.device, self.tgt_embed.weight.dtype)
        stacked = None
        if dtype in (torch.bfloat16, torch.float16) and not torch.is_grad_enabled():
            stacked = [layer.self_attn.stacked_qkv(dtype) for layer in self.decoder_layers]
        return DecoderState(0, self_caches, stacked)

    def decode_step(
        self, prev_tokens: torch.Tensor, enc: EncoderOut, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState]:
        x = self._embed(self.tgt_embed, prev_tokens[:, None], offset=state.step)
        if enc.cross_kv is None:
            raise ValueError("decode_step needs the encoder output given to init_decoder_state")
        new_caches = []
        stacked = state.stacked_qkv or [None] * len(self.decoder_layers)
        for layer, self_cache, cross_cache, qkv in zip(
            self.decoder_layers, state.self_caches, enc.cross_kv, stacked, strict=True
        ):
            x, self_cache = layer(
                x, enc.attn_mask, self_cache=self_cache, cross_cache=cross_cache, self_qkv=qkv
            )
            new_caches.append(self_cache)
        logits = self._output(x, enc)[:, 0]
        return logits, DecoderState(state.step + 1, new_caches, state.stacked_qkv)

    def expand_for_beams(
        self, enc: EncoderOut, state: DecoderState, beams: int
    ) -> tuple[EncoderOut, DecoderState]:
        """``enc`` and ``state`` of n sentences for ``beams`` beams each (decoder rows
        ``n * beams``), copying neither. The beams share their sentence's encoder output: the
        cross-attention takes their queries together against one copy of its keys and values
        (beam 4: 3x less time in that attention on a CPU). Their self-attention caches share
        the steps taken so far (``BeamKVCache``). A copy layer points into the
        source row by row, so with one the encoder rows are copied instead."""
        if self.copy is not None:
            rows = torch.arange(enc.memory.size(0), device=enc.memory.device)
            enc = self.reorder_encoder_out(enc, rows.repeat_interleave(beams))
        else:
            enc = dataclasses.replace(enc, beams=enc.beams * beams)
        caches = [cache.expand_beams(beams) for cache in state.self_caches]
        return enc, dataclasses.replace(state, self_caches=caches)

    def reorder_encoder_out(self, enc: EncoderOut, index: torch.Tensor) -> EncoderOut:
        """``index`` selects decoder rows; when K beams share encoder rows, it must take whole
        sentences: K rows at a time, all of one sentence (as dropping finished sentences does)."""
        if enc.beams > 1:
            k = enc.beams
            sentences = whole_sentences(index, k)
            if sentences is None:
                raise ValueError(
                    f"reordering an encoder output shared by {k} beams needs whole sentences "
                    f"({k} rows at a time, all of one sentence), got rows {index.tolist()}"
                )
            index = sentences
        tokens = enc.src_tokens
        return EncoderOut(
            enc.memory.index_select(0, index),
            enc.pad_mask.index_select(0, index),
            None if tokens is None else tokens.index_select(0, index),
            None if enc.cross_kv is None else [c.index_select(index) for c in enc.cross_kv],
            enc.beams,
        )

    def reorder_decoder_state(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        # Only the self-attention caches follow beam parents; see EncoderOut.cross_kv.
        caches = [c.index_select(index) for c in state.self_caches]
        return dataclasses.replace(state, self_caches=caches)

    # -- attention maps --------------------------------------------------------------------------
    def attention_modules(self) -> dict[str, list[MultiHeadAttention]]:
        return {
            "encoder_self": [layer.self_attn for layer in self.encoder_layers],
            "decoder_self": [layer.self_attn for layer in self.decoder_layers],
            "cross": [layer.cross_attn for layer in self.decoder_layers],
        }

    @torch.no_grad()
    def attention_maps(
        self, src: torch.Tensor, src_pad_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Attention weights of a teacher-forced pass, ``[layers, B, heads, queries, keys]`` each.

        Every layer and head of all three kinds: encoder self-attention, decoder
        self-attention and encoder-decoder (cross) attention.
        """
        modules = [m for group in self.attention_modules().values() for m in group]
        for module in modules:
            module.keep_weights = True
        try:
            self(src, src_pad_mask, tgt_in)
            return {
                name: torch.stack([m.last_weights for m in group])
                for name, group in self.attention_modules().items()
            }
        finally:
            for module in modules:
                module.keep_weights, module.last_weights = False, None
