"""A copy (pointer-generator) output layer: the next token is either generated from the vocabulary
or copied from the source (See et al. 2017; Gu et al. 2016), as OpenNMT's ``copy_attn`` offers.

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

# log(0) would make log's gradient infinite at padding (whose copy mass is 0); this adds ~1e-30.
_TINY = 1e-30


def first_occurrences(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` True where a token appears for the first time in its row."""
    ordered, order = tokens.sort(dim=-1, stable=True)
    first_in_order = torch.ones_like(ordered, dtype=torch.bool)
    first_in_order[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return torch.empty_like(first_in_order).scatter_(-1, order, first_in_order)


class CopyGenerator(nn.Module):
    """``p(y) = g · softmax(logits)[y] + (1 - g) · Σ_{i: src_i = y} a_i``.

    ``a`` is a single-head attention of the decoder output over the encoder output and
    ``g = σ(w · [h; context] + b)`` the generation gate. Returns the log of the mixture, a
    normalised log-distribution: ``log_softmax`` leaves it unchanged, so the loss and every
    search treat it exactly as they treat logits.

    Only the (at most S) tokens of the source change from ``log g + log_softmax(logits)``, so the
    mixture is computed for those alone and written over the dense term, instead of a
    ``logaddexp``, ``log`` and their backwards over the whole ``[B, T, V]`` tensor.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Linear(2 * d_model, 1)
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
        gate = self.gate(torch.cat([hidden, context.to(hidden.dtype)], dim=-1)).float()

        log_generate = F.log_softmax(logits.float(), dim=-1) + F.logsigmoid(gate)  # [B, T, V]
        index = src_tokens[:, None, :].expand_as(attention)
        # The copy mass of the token at each source position: a token that occurs twice gets both.
        copy_mass = torch.zeros_like(log_generate).scatter_add_(-1, index, attention)
        copy_mass = copy_mass.gather(-1, index)
        mixed = torch.logaddexp(
            log_generate.gather(-1, index), copy_mass.clamp_min(_TINY).log() + F.logsigmoid(-gate)
        )
        # A repeated token is written once per occurrence with the same value; only its first
        # occurrence may carry the gradient, or it would count once per repetition.
        first = first_occurrences(src_tokens)[:, None, :]
        mixed = torch.where(first, mixed, mixed.detach())
        return log_generate.scatter(-1, index, mixed)
