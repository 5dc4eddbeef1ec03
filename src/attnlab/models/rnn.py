"""RNN encoder-decoders with attention: the baselines the Transformer replaced.

- :class:`BahdanauRNN`: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly
  Learning to Align and Translate": bidirectional GRU encoder, additive attention queried with
  the previous decoder state, GRU decoder fed the previous word and the context, deep output
  with maxout (App. A.2.2).
- :class:`LuongRNN`: Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural
  Machine Translation": stacked LSTMs, global attention (dot / general / concat) queried with the
  current top hidden state, attentional hidden state ``tanh(W_c [c_t; h_t])``, input feeding (§3.3).

Both implement the incremental interface of ``models/interface.py``. The teacher-forced
``forward`` runs the very recurrence ``decode_step`` runs (``_advance``), so training and
decoding cannot disagree; only what feeds nothing back runs outside the step loop: the target
embedding once before it, the output layer once after it, on the real target positions only.
Luong without input feeding feeds nothing of its attention back, so there the decoder LSTM runs
over the whole target in one call and the attention of all steps in one batched matmul
(``_advance_all``, through the same layers as ``_advance``). Padding is handled in the encoder
by ``run_padded`` (each row over its own length) and by masked attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from attnlab.config_errors import require
from attnlab.models.arguments import check_bahdanau, check_luong
from attnlab.models.attention import AdditiveAttention, GlobalAttention, Packing, packing_for
from attnlab.models.copy import AlignmentCopy, check_copy_attention
from attnlab.models.dropout import dropout
from attnlab.models.frontends import CTCHead, build_frontend
from attnlab.models.linear import Linear
from attnlab.models.recurrent import run_padded, run_recurrent
from attnlab.models.step_attention import AdditiveStepScores, StepAttention


@dataclass
class RNNEncoderOut:
    memory: torch.Tensor  # [B, S, H_enc]: the annotations h_j
    keys: torch.Tensor  # [B, S, A]: memory projected once for the attention score
    pad_mask: torch.Tensor  # [B, S]
    final: tuple[torch.Tensor, ...]  # the encoder's final states, [layers * dirs, B, H] each
    src_tokens: torch.Tensor | None = None  # [B, S], kept for a copy layer to point into
    # Teacher forcing only: Luong's dot-product attention over this memory that sums its
    # gradients once, or additive scores (Bahdanau's, Luong's concat) by native kernels.
    step_attention: StepAttention | AdditiveStepScores | None = None

    def index_select(self, index: torch.Tensor) -> RNNEncoderOut:
        tokens = self.src_tokens
        return RNNEncoderOut(
            self.memory.index_select(0, index),
            self.keys.index_select(0, index),
            self.pad_mask.index_select(0, index),
            tuple(s.index_select(1, index) for s in self.final),
            None if tokens is None else tokens.index_select(0, index),
        )


@dataclass
class _Step:
    """One decoder step up to its output layer: what that layer reads, and what a copy layer
    mixes in (all ``[B, *]``; ``[B, T, *]`` when it holds all steps at once)."""

    readout: torch.Tensor  # the output layer's input
    alignment: torch.Tensor  # a_t over the source, [B, S]
    context: torch.Tensor  # c_t
    decoder_state: torch.Tensor  # the top decoder state s_t (h_t)
    inputs: torch.Tensor  # the previous token's embedding, after dropout


@dataclass
class RNNDecoderState:
    hidden: tuple[torch.Tensor, ...]  # (h,) for a GRU, (h, c) for an LSTM: [layers, B, H]
    feed: torch.Tensor | None = None  # Luong's attentional vector fed to the next step
    weights: list[torch.Tensor] = field(default_factory=list)  # alignments, if kept

    def index_select(self, index: torch.Tensor) -> RNNDecoderState:
        return RNNDecoderState(
            tuple(h.index_select(1, index) for h in self.hidden),
            None if self.feed is None else self.feed.index_select(0, index),
            [w.index_select(0, index) for w in self.weights],
        )


class RNNEncoder(nn.Module):
    """Embeds token ids (or passes feature frames through a front-end), then a stacked RNN."""

    def __init__(
        self,
        embedding: nn.Embedding | None,
        cell: str,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout_p: float,
        frontend: nn.Module | None = None,
        input_size: int | None = None,
    ):
        super().__init__()
        self.embedding, self.frontend = embedding, frontend
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(
            input_size or embedding.embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout_p if num_layers > 1 else 0.0,
        )
        self.dropout = dropout_p
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(
        self, src: torch.Tensor, pad_mask: torch.Tensor
    ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """Annotations ``[B, S, H]``, final states, and the padding mask of the annotations
        (a front-end subsamples frames, so it can differ from the input's)."""
        if self.frontend is None:
            embedded = self.embedding(src)
        else:
            embedded, pad_mask = self.frontend(src, pad_mask)
        embedded = dropout(embedded, self.dropout, self.training)
        outputs, final = run_padded(self.rnn, embedded, (~pad_mask).sum(1))
        return dropout(outputs, self.dropout, self.training), final, pad_mask


def _embeddings(
    src_vocab_size: int,
    tgt_vocab_size: int,
    embed_dim: int,
    pad_id: int,
    share_embeddings: bool,
    input_dim: int | None = None,
) -> tuple[nn.Embedding | None, nn.Embedding]:
    if input_dim is not None:  # feature frames: only the target side has an embedding
        return None, nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
    require(
        not share_embeddings or src_vocab_size == tgt_vocab_size,
        "share_embeddings",
        f"needs one joint vocabulary, got source {src_vocab_size} and target {tgt_vocab_size}",
    )
    tgt = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
    src = tgt if share_embeddings else nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
    return src, tgt


class _RNNSeq2Seq(nn.Module):
    """What both families share: teacher forcing, decoding steps and reordering. A family
    gives ``_advance`` (one step of the recurrence from the previous token's embedding, after
    dropout, up to the output layer) and ``_output`` (the output layer, applied to one step or
    to many at once)."""

    keep_weights = False

    def _speech_parts(self, input_dim: int | None, frontend: dict | None, embed_dim: int) -> dict:
        """Front-end and CTC head for feature inputs (speech); nothing for token ids."""
        if input_dim is None:
            return {}
        return {"frontend": build_frontend(input_dim, embed_dim, frontend), "input_size": embed_dim}

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor) -> RNNEncoderOut:
        memory, final, pad_mask = self.encoder(src, src_pad_mask)
        # The attention's key projection does not depend on the decoder step: compute it once.
        keys = self.attention.precompute(memory)
        return RNNEncoderOut(memory, keys, pad_mask, final, src if self.copy is not None else None)

    def ctc_log_probs(self, enc: RNNEncoderOut) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probs ``[B, S, V]`` of the encoder annotations and their lengths ``[B]``."""
        if self.ctc is None:
            raise ValueError("this model has no CTC head (model.ctc_head=false)")
        return self.ctc(enc.memory, enc.pad_mask)

    def forward(
        self,
        src: torch.Tensor,
        src_pad_mask: torch.Tensor,
        tgt_in: torch.Tensor,
        target_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.decode(tgt_in, self.encode(src, src_pad_mask), target_positions)

    def decode(
        self,
        tgt_in: torch.Tensor,
        enc: RNNEncoderOut,
        target_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` given the encoder output; with
        ``target_positions`` (flat indices into ``B * T``), the ``[N, V]`` rows of those.

        The recurrence runs step by step, unless the family can run all steps at once
        (``_advance_all``: Luong without input feeding). The target is embedded once before it and the output
        layer runs once after it, on the selected positions: one large matmul instead of one
        per step, no per-step ``[B, V]`` logits to stack, no per-step gradient of the output
        and embedding weights to accumulate. fp32 training steps at 8,192-token batches, vocab
        8,000, on a 2-core Zen 3: Luong 1.12x, Bahdanau 1.07x (medians of 24 interleaved
        per-step ratios, ``outputs/measured/2026-12-07_s23_zen3``). A copy layer mixes each
        step's own alignment into that step's distribution, so with one the output layer runs
        per step, as in ``decode_step``."""
        state = self.init_decoder_state(enc)
        embedded = self._embed(tgt_in)
        enc = self._for_teacher_forcing(enc)
        every_step = self._advance_all(embedded, enc, state)
        if every_step is not None:
            out = self._logits(every_step, enc) if self.copy is not None else every_step.readout
        else:
            steps = []
            # unbind, not indexing: its backward writes the T gradients once, where each
            # index's backward would fill a zero [B, T, E] tensor.
            for inputs in embedded.unbind(1):
                step, state = self._advance(inputs, enc, state)
                steps.append(self._logits(step, enc) if self.copy is not None else step.readout)
            out = torch.stack(steps, dim=1)
        if target_positions is None:
            return out if self.copy is not None else self._output(out)
        # Only the output layer runs on the selected rows, rounded up where oneDNN runs it (a
        # new row count per batch left memory behind; see ``packing_for``); the copy layer has
        # already run, step by step.
        b, t = tgt_in.shape
        rounded = self.copy is None and packing_for(out)
        packing = Packing.of(target_positions, b, t, rounded)
        out = packing.pack(out)
        return out if self.copy is not None else packing.real(self._output(out))

    def decode_step(
        self, prev_tokens: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> tuple[torch.Tensor, RNNDecoderState]:
        step, state = self._advance(self._embed(prev_tokens), enc, state)
        return self._logits(step, enc), state

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return dropout(self.tgt_embed(tokens), self.dropout, self.training)

    def _logits(self, step: _Step, enc: RNNEncoderOut) -> torch.Tensor:
        logits = self._output(step.readout)
        if self.copy is not None:  # the alignment a_t doubles as the copy distribution
            logits = self.copy(
                logits,
                step.alignment,
                step.context,
                step.decoder_state,
                step.inputs,
                enc.src_tokens,
            )
        return logits

    def _advance(
        self, embedded: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> tuple[_Step, RNNDecoderState]:
        raise NotImplementedError

    def _for_teacher_forcing(self, enc: RNNEncoderOut) -> RNNEncoderOut:
        """The encoder output as the teacher-forced steps read it (a family may add to it)."""
        return enc

    def _advance_all(
        self, embedded: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> _Step | None:
        """All T steps of teacher forcing at once from the embedded target ``[B, T, E]``, as
        ``[B, T, *]`` fields, for a recurrence that feeds nothing but its own state back; None
        for one that must step."""
        return None

    def _output(self, readout: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def attention_maps(
        self, src: torch.Tensor, src_pad_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The alignment of a teacher-forced pass as ``cross``: ``[1, B, 1, T, S]`` (one layer,
        one head), the same layout the Transformer returns per layer and head."""
        enc = self.encode(src, src_pad_mask)
        state = self.init_decoder_state(enc)
        self.keep_weights = True
        try:
            for inputs in self._embed(tgt_in).unbind(1):
                _, state = self._advance(inputs, enc, state)
        finally:
            self.keep_weights = False
        return {"cross": torch.stack(state.weights, dim=1)[None, :, None]}

    def reorder_encoder_out(self, enc: RNNEncoderOut, index: torch.Tensor) -> RNNEncoderOut:
        return enc.index_select(index)

    def reorder_decoder_state(self, state: RNNDecoderState, index: torch.Tensor) -> RNNDecoderState:
        return state.index_select(index)

    def _keep(self, state: RNNDecoderState, weights: torch.Tensor) -> list[torch.Tensor]:
        return [*state.weights, weights.detach()] if self.keep_weights else state.weights


class BahdanauRNN(_RNNSeq2Seq):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        embed_dim: int = 256,
        hidden_size: int = 512,
        attention_size: int | None = None,
        encoder_layers: int = 1,
        decoder_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        deep_output: bool = True,
        maxout_size: int | None = None,
        share_embeddings: bool = False,
        tie_output: bool = False,
        input_dim: int | None = None,
        frontend: dict | None = None,
        ctc_head: bool = False,
        copy_attention: bool = False,
    ):
        super().__init__()
        check_copy_attention(copy_attention, input_dim, src_vocab_size, tgt_vocab_size)
        check_bahdanau(
            embed_dim=embed_dim,
            hidden_size=hidden_size,
            attention_size=attention_size,
            encoder_layers=encoder_layers,
            decoder_layers=decoder_layers,
            dropout=dropout,
            deep_output=deep_output,
            maxout_size=maxout_size,
            tie_output=tie_output,
        )
        attention_size = attention_size or hidden_size
        maxout_size = maxout_size or embed_dim
        out_size = maxout_size if deep_output else hidden_size
        self.src_embed, self.tgt_embed = _embeddings(
            src_vocab_size, tgt_vocab_size, embed_dim, pad_id, share_embeddings, input_dim
        )
        self.encoder = RNNEncoder(
            self.src_embed,
            "gru",
            hidden_size,
            encoder_layers,
            bidirectional,
            dropout,
            **self._speech_parts(input_dim, frontend, embed_dim),
        )
        memory_size = self.encoder.output_size
        self.ctc = CTCHead(memory_size, tgt_vocab_size) if ctc_head else None
        self.bidirectional, self.decoder_layers, self.dropout = (
            bidirectional,
            decoder_layers,
            dropout,
        )
        # s_0 = tanh(W_s h<-_1): the decoder starts from the backward encoder state (App. A.2.2).
        self.init_proj = Linear(hidden_size, hidden_size * decoder_layers)
        self.attention = AdditiveAttention(hidden_size, memory_size, attention_size)
        self.decoder = nn.GRU(
            embed_dim + memory_size,
            hidden_size,
            num_layers=decoder_layers,
            batch_first=True,
            dropout=dropout if decoder_layers > 1 else 0.0,
        )
        self.deep_output = deep_output
        if deep_output:  # t~_i = U_o s_i + V_o E y_{i-1} + C_o c_i, then maxout over pairs
            self.pre_output = Linear(hidden_size + embed_dim + memory_size, 2 * maxout_size)
        self.output_proj = Linear(out_size, tgt_vocab_size)
        if tie_output:
            self.output_proj.weight = self.tgt_embed.weight
        # A pointer over the source (See et al. 2017, built on this very model): models/copy.py.
        self.copy = AlignmentCopy(memory_size, hidden_size, embed_dim) if copy_attention else None

    def init_decoder_state(self, enc: RNNEncoderOut) -> RNNDecoderState:
        (h_n,) = (
            enc.final
        )  # [layers * dirs, B, H]; the last entry is the top layer's backward state
        start = torch.tanh(self.init_proj(h_n[-1]))
        batch = start.size(0)
        hidden = start.view(batch, self.decoder_layers, -1).transpose(0, 1).contiguous()
        return RNNDecoderState((hidden,))

    def _advance(
        self, embedded: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> tuple[_Step, RNNDecoderState]:
        (hidden,) = state.hidden
        # The alignment model is queried with the previous state s_{i-1} (Bahdanau §3.1).
        context, weights = self.attention(
            hidden[-1], enc.memory, enc.keys, enc.pad_mask, enc.step_attention
        )
        output, hidden = self.decoder(torch.cat([embedded, context], dim=-1)[:, None], hidden)
        output = output[:, 0]
        # The deep output reads s_i, E y_{i-1} and c_i; none of it feeds the next step.
        readout = torch.cat([output, embedded, context], dim=-1) if self.deep_output else output
        step = _Step(readout, weights, context, output, embedded)
        return step, RNNDecoderState((hidden,), None, self._keep(state, weights))

    def _for_teacher_forcing(self, enc: RNNEncoderOut) -> RNNEncoderOut:
        # The additive scores by native kernels, the keys' gradient summed in place over the
        # steps (models/step_attention.py).
        if AdditiveStepScores.applies(enc.keys):
            return replace(enc, step_attention=AdditiveStepScores(enc.keys))
        return enc

    def _output(self, readout: torch.Tensor) -> torch.Tensor:
        if self.deep_output:
            pre = self.pre_output(readout)
            readout = pre.view(*pre.shape[:-1], -1, 2).amax(dim=-1)  # maxout, pool size 2
        return self.output_proj(dropout(readout, self.dropout, self.training))


class LuongRNN(_RNNSeq2Seq):
    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        embed_dim: int = 256,
        hidden_size: int = 512,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        bidirectional: bool = True,
        score: str = "general",
        input_feeding: bool = True,
        dropout: float = 0.2,
        share_embeddings: bool = False,
        tie_output: bool = False,
        input_dim: int | None = None,
        frontend: dict | None = None,
        ctc_head: bool = False,
        copy_attention: bool = False,
    ):
        super().__init__()
        check_copy_attention(copy_attention, input_dim, src_vocab_size, tgt_vocab_size)
        check_luong(
            embed_dim=embed_dim,
            hidden_size=hidden_size,
            encoder_layers=encoder_layers,
            decoder_layers=decoder_layers,
            dropout=dropout,
            score=score,
            tie_output=tie_output,
            bidirectional=bidirectional,
        )
        self.src_embed, self.tgt_embed = _embeddings(
            src_vocab_size, tgt_vocab_size, embed_dim, pad_id, share_embeddings, input_dim
        )
        # A bidirectional encoder has 2H-wide annotations; a bridge maps them (and the final
        # states) to the decoder's width H so every score, dot included, is defined.
        encoder_hidden = hidden_size // 2 if bidirectional else hidden_size
        self.encoder = RNNEncoder(
            self.src_embed,
            "lstm",
            encoder_hidden,
            encoder_layers,
            bidirectional,
            dropout,
            **self._speech_parts(input_dim, frontend, embed_dim),
        )
        self.ctc = CTCHead(self.encoder.output_size, tgt_vocab_size) if ctc_head else None
        self.hidden_size, self.decoder_layers, self.dropout = hidden_size, decoder_layers, dropout
        self.encoder_layers, self.bidirectional = encoder_layers, bidirectional
        self.input_feeding = input_feeding
        self.attention = GlobalAttention(hidden_size, hidden_size, score)
        self.decoder = nn.LSTM(
            embed_dim + (hidden_size if input_feeding else 0),
            hidden_size,
            num_layers=decoder_layers,
            batch_first=True,
            dropout=dropout if decoder_layers > 1 else 0.0,
        )
        self.combine = Linear(
            2 * hidden_size, hidden_size, bias=False
        )  # h~_t = tanh(W_c[c_t; h_t])
        self.output_proj = Linear(hidden_size, tgt_vocab_size)
        if tie_output:
            self.output_proj.weight = self.tgt_embed.weight
        # A pointer over the source with the alignment a_t (See et al. 2017): models/copy.py.
        self.copy = AlignmentCopy(hidden_size, hidden_size, embed_dim) if copy_attention else None

    def _bridge(self, state: torch.Tensor) -> torch.Tensor:
        """Encoder final states ``[layers*dirs, B, H/dirs]`` -> decoder initial ``[layers_dec, B, H]``."""
        dirs = 2 if self.bidirectional else 1
        state = state.view(self.encoder_layers, dirs, *state.shape[1:])
        state = torch.cat(list(state.unbind(1)), dim=-1)  # [layers, B, H]
        if self.encoder_layers >= self.decoder_layers:
            return state[-self.decoder_layers :].contiguous()
        pad = state.new_zeros(self.decoder_layers - self.encoder_layers, *state.shape[1:])
        return torch.cat([pad, state], dim=0)

    def init_decoder_state(self, enc: RNNEncoderOut) -> RNNDecoderState:
        h_n, c_n = enc.final
        feed = (
            enc.memory.new_zeros(enc.memory.size(0), self.hidden_size)
            if self.input_feeding
            else None
        )
        return RNNDecoderState((self._bridge(h_n), self._bridge(c_n)), feed)

    def _advance(
        self, embedded: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> tuple[_Step, RNNDecoderState]:
        # Input feeding (§3.3): the previous attentional vector joins the input, so the model
        # knows which source words it has already covered.
        inputs = torch.cat([embedded, state.feed], dim=-1) if self.input_feeding else embedded
        output, (h, c) = run_recurrent(self.decoder, inputs[:, None], state.hidden)
        step = self._attend(output[:, 0], embedded, enc)
        feed = step.readout if self.input_feeding else None
        weights = self._keep(state, step.alignment)
        return step, replace(state, hidden=(h, c), feed=feed, weights=weights)

    def _advance_all(
        self, embedded: torch.Tensor, enc: RNNEncoderOut, state: RNNDecoderState
    ) -> _Step | None:
        # Without input feeding the attention feeds nothing back: the decoder LSTM runs over
        # the whole target in one call and the attention of all steps is one batched matmul.
        # Padding at a target's end changes none of its real steps (the LSTM is causal).
        if self.input_feeding:
            return None
        output, _ = run_recurrent(self.decoder, embedded, state.hidden)
        return self._attend(output, embedded, enc)

    def _for_teacher_forcing(self, enc: RNNEncoderOut) -> RNNEncoderOut:
        # Stepping with a dot-product score: the memory's and keys' gradients are summed over
        # the steps in one matmul each; with concat, the additive scores by native kernels
        # (models/step_attention.py).
        if not self.input_feeding:
            return enc
        if self.attention.score in ("dot", "general") and StepAttention.applies(enc.memory):
            return replace(enc, step_attention=StepAttention(enc.memory, enc.keys, enc.pad_mask))
        if self.attention.score == "concat" and AdditiveStepScores.applies(enc.keys):
            return replace(enc, step_attention=AdditiveStepScores(enc.keys))
        return enc

    def _attend(self, top: torch.Tensor, embedded: torch.Tensor, enc: RNNEncoderOut) -> _Step:
        """Global attention and the attentional vector ``h~_t = tanh(W_c [c_t; h_t])`` from the
        top decoder state(s), ``[B, H]`` for one step or ``[B, T, H]`` for all."""
        step = enc.step_attention if top.dim() == 2 else None
        if isinstance(step, StepAttention):
            context, weights = step(top)
        else:
            context, weights = self.attention(top, enc.memory, enc.keys, enc.pad_mask, step)
        attentional = torch.tanh(self.combine(torch.cat([context, top], dim=-1)))
        attentional = dropout(attentional, self.dropout, self.training)
        return _Step(attentional, weights, context, top, embedded)

    def _output(self, readout: torch.Tensor) -> torch.Tensor:
        return self.output_proj(readout)
