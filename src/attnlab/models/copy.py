"""A copy (pointer-generator) output layer: the next token is either generated from the vocabulary
or copied from the source (See et al. 2017; Gu et al. 2016), as OpenNMT's ``copy_attn`` offers.
The Transformer points with an attention of its own (:class:`CopyGenerator`); the RNNs point with
their alignment, as See et al. did (:class:`AlignmentCopy`); both mix by :func:`mix_copy`.

Summaries and dialogue answers reuse the names, numbers and rare words of their source; a model
trained from scratch on a few thousand examples sees each of those too seldom to learn to
generate it, but can learn *where* to point. The layer needs one vocabulary shared by source and
target (the source ids index the output distribution), so there is no extended vocabulary: a
word the tokenizer splits is copied piece by piece.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.config_errors import require
from attnlab.models.linear import Linear

# log(0) would make log's gradient infinite at padding (whose copy mass is 0); this adds ~1e-30.
_TINY = 1e-30


def first_occurrences(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` True where a token appears for the first time in its row."""
    ordered, order = tokens.sort(dim=-1, stable=True)
    first_in_order = torch.ones_like(ordered, dtype=torch.bool)
    first_in_order[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return torch.empty_like(first_in_order).scatter_(-1, order, first_in_order)


def check_copy_attention(
    copy_attention: bool, input_dim: int | None, src_vocab_size: int, tgt_vocab_size: int
) -> None:
    """A copy layer indexes the output distribution by source token ids."""
    require(
        not copy_attention or (input_dim is None and src_vocab_size == tgt_vocab_size),
        "copy_attention",
        "copies source token ids into the target, so it needs token sources (not input_dim="
        f"{input_dim}) and one joint vocabulary (source {src_vocab_size}, target "
        f"{tgt_vocab_size})",
    )


def mix_copy(
    logits: torch.Tensor,
    attention: torch.Tensor,
    gate: torch.Tensor,
    src_tokens: torch.Tensor,
) -> torch.Tensor:
    """``log(σ(gate) · softmax(logits)[y] + σ(-gate) · Σ_{i: src_i = y} attention_i)``.

    ``logits [B, V]`` or ``[B, T, V]``; ``attention`` over the source, ``[B, S]`` or
    ``[B, T, S]`` (zero at padding); ``gate`` logits ``[B, 1]`` or ``[B, T, 1]``;
    ``src_tokens [B, S]``. Returns a normalised log-distribution shaped like ``logits``:
    ``log_softmax`` leaves it unchanged, so the loss and every search treat it exactly as they
    treat logits.

    Only the (at most S) tokens of the source change from ``log g + log_softmax(logits)``, so the
    mixture is computed for those alone and written over the dense term, instead of a
    ``logaddexp``, ``log`` and their backwards over the whole vocabulary.
    """
    gate = gate.float()
    attention = attention.float()
    log_generate = F.log_softmax(logits.float(), dim=-1) + F.logsigmoid(gate)
    first = first_occurrences(src_tokens)
    if attention.dim() == 3:
        src_tokens, first = src_tokens[:, None, :], first[:, None, :]
    index = src_tokens.expand_as(attention)
    # The copy mass of the token at each source position: a token that occurs twice gets both.
    copy_mass = torch.zeros_like(log_generate).scatter_add_(-1, index, attention)
    copy_mass = copy_mass.gather(-1, index)
    mixed = torch.logaddexp(
        log_generate.gather(-1, index), copy_mass.clamp_min(_TINY).log() + F.logsigmoid(-gate)
    )
    # A repeated token is written once per occurrence with the same value; only its first
    # occurrence may carry the gradient, or it would count once per repetition.
    mixed = torch.where(first, mixed, mixed.detach())
    return log_generate.scatter(-1, index, mixed)


class CopyGenerator(nn.Module):
    """``p(y) = g · softmax(logits)[y] + (1 - g) · Σ_{i: src_i = y} a_i`` for the Transformer.

    ``a`` is a single-head attention of the decoder output over the encoder output and
    ``g = σ(w · [h; context] + b)`` the generation gate (:func:`mix_copy` mixes them).
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.query = Linear(d_model, d_model, bias=False)
        self.gate = Linear(2 * d_model, 1)
        self.scale = 1.0 / math.sqrt(d_model)

    def forward(
        self,
        logits: torch.Tensor,
        hidden: torch.Tensor,
        memory: torch.Tensor,
        pad_mask: torch.Tensor,
        src_tokens: torch.Tensor,
    ) -> torch.Tensor:
        """``logits [B, T, V]`` and ``hidden [B, T, d]`` from the decoder, ``memory [B, S, d]``
        and ``pad_mask [B, S]`` (True at padding) from the encoder, ``src_tokens [B, S]``."""
        scores = torch.matmul(self.query(hidden), memory.transpose(1, 2)) * self.scale
        scores = scores.float().masked_fill(pad_mask[:, None, :], float("-inf"))
        attention = torch.softmax(scores, dim=-1)  # [B, T, S]
        context = torch.matmul(attention.to(memory.dtype), memory)
        gate = self.gate(torch.cat([hidden, context.to(hidden.dtype)], dim=-1))
        return mix_copy(logits, attention, gate, src_tokens)


class AlignmentCopy(nn.Module):
    """The pointer-generator of See et al. (2017) for an RNN decoder step: its alignment ``a_t``
    doubles as the copy distribution, and ``p_gen = σ(w_c · c_t + w_s · s_t + w_x · x_t + b)``
    from the context, the decoder state and the decoder input."""

    def __init__(self, context_size: int, state_size: int, input_size: int):
        super().__init__()
        self.gate = Linear(context_size + state_size + input_size, 1)

    def forward(
        self,
        logits: torch.Tensor,
        alignment: torch.Tensor,
        context: torch.Tensor,
        state: torch.Tensor,
        inputs: torch.Tensor,
        src_tokens: torch.Tensor,
    ) -> torch.Tensor:
        """``logits [B, V]``, ``alignment [B, S]``, ``context``, ``state`` and ``inputs``
        ``[B, *]`` of one step, ``src_tokens [B, S]``: log-probabilities ``[B, V]``."""
        gate = self.gate(torch.cat([context, state, inputs], dim=-1))
        # An alignment given in bf16 sums to 1 only within ~4e-3 (attnlab's RNN attentions give
        # fp32 ones); renormalised in fp32 either way.
        alignment = alignment.float()
        alignment = alignment / alignment.sum(-1, keepdim=True)
        return mix_copy(logits, alignment, gate, src_tokens)
