"""Multi-head attention (Vaswani et al. 2017, §3.2) with d_k and d_v chosen independently.

``nn.MultiheadAttention`` ties the value width to the key width (d_model / h); the paper's
Table 3 rows (A) and (B) vary d_k and d_v separately, so the projections here are explicit:
Q, K in R^{h·d_k}, V in R^{h·d_v}, output W^O in R^{h·d_v × d_model}. The scaled dot product
itself runs through ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU), falling
back to the explicit softmax only when the weights are requested (attention maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class KVCache:
    """Keys and values seen so far by one attention layer, ``[B, h, t, d]`` each."""

    key: torch.Tensor
    value: torch.Tensor

    def index_select(self, index: torch.Tensor) -> KVCache:
        return KVCache(self.key.index_select(0, index), self.value.index_select(0, index))


class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1..head_h) W^O``, ``head_i = Attention(QW_i^Q, KW_i^K, VW_i^V)``."""

    def __init__(
        self, d_model: int, n_heads: int, d_k: int, d_v: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, n_heads * d_k, bias=bias)
        self.k_proj = nn.Linear(d_model, n_heads * d_k, bias=bias)
        self.v_proj = nn.Linear(d_model, n_heads * d_v, bias=bias)
        self.out_proj = nn.Linear(n_heads * d_v, d_model, bias=bias)
        # Set by the caller that wants attention maps; kept as ``[B, h, T, S]``.
        self.last_weights: torch.Tensor | None = None
        self.keep_weights = False

    def _split(self, x: torch.Tensor, d: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, d).transpose(1, 2)

    def project_kv(self, memory: torch.Tensor) -> KVCache:
        """Keys and values of ``memory`` (the encoder output for cross-attention, computed once)."""
        return KVCache(self._split(self.k_proj(memory), self.d_k), self._split(self.v_proj(memory), self.d_v))

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        static_kv: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Attend from ``query [B, T, d_model]`` to ``key_value [B, S, d_model]``.

        ``attn_mask`` is boolean, True where attention is *allowed*, broadcastable to
        ``[B, h, T, S]``. With ``cache`` and ``static_kv=False`` (decoder self-attention) the new
        keys/values are appended to the cache; with ``static_kv=True`` (cross-attention) the
        cache already holds the projected memory and ``key_value`` is ignored.
        """
        q = self._split(self.q_proj(query), self.d_k)
        if static_kv and cache is not None:
            k, v = cache.key, cache.value
        else:
            source = query if key_value is None else key_value
            k = self._split(self.k_proj(source), self.d_k)
            v = self._split(self.v_proj(source), self.d_v)
            if cache is not None:
                k = torch.cat([cache.key, k], dim=2)
                v = torch.cat([cache.value, v], dim=2)
            # Incremental decoding passes a (possibly empty) cache and gets the grown one back.
            cache = KVCache(k, v) if cache is not None else None
        dropout_p = self.dropout if self.training else 0.0
        if self.keep_weights:
            out = self._explicit_attention(q, k, v, attn_mask, is_causal, dropout_p)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
            )
        b, _, t, _ = out.shape
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.d_v)
        return self.out_proj(out), cache

    def _explicit_attention(self, q, k, v, attn_mask, is_causal, dropout_p):
        # Same maths as SDPA, spelled out so the softmax weights can be kept for plotting.
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if is_causal:
            t, s = scores.shape[-2:]
            causal = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
            attn_mask = causal if attn_mask is None else attn_mask & causal
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        self.last_weights = weights.detach()
        return F.dropout(weights, dropout_p, self.training) @ v
