"""Positional information (Vaswani et al. 2017, §3.5): fixed sinusoids or learned embeddings.

Table 3 row (E) swaps the sinusoids for learned positional embeddings and finds nearly
identical results; both are here behind one switch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_fits(length: int, offset: int, max_len: int) -> None:
    # A slice past the table is empty and would broadcast the batch away without a word.
    if offset + length > max_len:
        raise ValueError(
            f"position {offset + length - 1} is past model.max_positions={max_len}: raise it, "
            "or shorten the inputs or the decoding length (decode.max_len_a/max_len_b)"
        )


class SinusoidalPositions(nn.Module):
    """``PE(pos, 2i) = sin(pos / 10000^{2i/d})``, ``PE(pos, 2i+1) = cos(pos / 10000^{2i/d})``."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        # Not a parameter and not saved: it is a pure function of (d_model, max_len).
        self.register_buffer("table", table, persistent=False)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        _check_fits(length, offset, self.table.size(0))
        return self.table[offset : offset + length]


class LearnedPositions(nn.Module):
    """One trained vector per position (Gehring et al. 2017), as in Table 3 row (E)."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=d_model**-0.5)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        _check_fits(length, offset, self.embedding.num_embeddings)
        positions = torch.arange(offset, offset + length, device=self.embedding.weight.device)
        return self.embedding(positions)


def build_positions(kind: str, d_model: int, max_len: int) -> nn.Module:
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_len)
    if kind == "learned":
        return LearnedPositions(d_model, max_len)
    raise ValueError(f"unknown positional encoding {kind!r}")
