"""Multi-head attention (Vaswani et al. 2017, §3.2) with d_k and d_v chosen independently.

``nn.MultiheadAttention`` ties the value width to the key width (d_model / h); the paper's
Table 3 rows (A) and (B) vary d_k and d_v separately, so the projections here are explicit:
Q, K in R^{h·d_k}, V in R^{h·d_v}, output W^O in R^{h·d_v × d_model}. The scaled dot product
itself runs through ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU), except
where something else measured faster on a CPU: fp32 attention over whole sequences (training,
an encoder) by a native kernel, two matmuls with an fp32 softmax in bf16 training, a native
kernel or two matmuls for a decoding step's cross-attention; and when the weights are
requested (attention maps). Decoder self-attention over a cache is the cache's own
(``kv_cache.py``, on every device).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from attnlab import native
from attnlab.models.kv_cache import KVCache, SelfAttentionCache
from attnlab.models.linear import (
    Linear,
    linear,
    matmul_dtype,
    onednn_matmuls,
    tracing_or_transformed,
)


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a right-padded ``[B, T]`` batch are, so that position-wise
    layers (projections, feed-forward, layer norm, dropout) run on them alone.

    ``index [N]`` holds their flat positions in ``B * T``, row by row. Only the attention core
    needs the padded layout: ``unpack`` lays packed rows out as ``[B, T, ...]`` with zeros at the
    padding, ``pack`` takes them back. On Multi30k-shaped batches a sixth of the positions are
    padding, and every position-wise FLOP spent on them is wasted.

    ``pack`` gives the N real rows, then (``gather``, from :meth:`of`) copies of the first.
    Rounding N up (:func:`rounded_rows`) makes batches share matmul shapes. oneDNN builds and
    caches a primitive per shape, and each new shape left memory behind: with a new token count
    in nearly every batch, a CPU training run's resident memory kept growing (:func:`packing_for`).
    The extra rows meet only position-wise layers and are dropped by ``unpack`` and :meth:`real`,
    so they get no gradient; logits and gradients agree with an unrounded pass to float rounding
    (dropout draws masks for the extra rows too, so a seeded run's masks differ).
    """

    index: torch.Tensor
    batch: int
    length: int
    gather: torch.Tensor | None = None  # what ``pack`` takes: ``index`` then the extra rows

    @classmethod
    def from_mask(cls, keep: torch.Tensor, round_rows: bool = False) -> Packing:
        """From ``keep [B, T]``, True at real tokens."""
        return cls.of(keep.reshape(-1).nonzero().squeeze(1), keep.size(0), keep.size(1), round_rows)

    @classmethod
    def of(cls, index: torch.Tensor, batch: int, length: int, round_rows: bool) -> Packing:
        n = index.numel()
        return cls.with_rows(index, batch, length, rounded_rows(n) if round_rows and n else n)

    @classmethod
    def with_rows(cls, index: torch.Tensor, batch: int, length: int, rows: int) -> Packing:
        extra = rows - index.numel()
        if extra <= 0:
            return cls(index, batch, length)
        return cls(index, batch, length, torch.cat([index, index[:1].expand(extra)]))

    @property
    def real_rows(self) -> int:
        return self.index.numel()

    @property
    def _gather(self) -> torch.Tensor:
        return self.index if self.gather is None else self.gather

    @property
    def positions(self) -> torch.Tensor:
        """Each packed row's position in its sentence (right padding: row offset)."""
        return self._gather % self.length

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, ...]`` -> ``[rows, ...]``."""
        return x.reshape(self.batch * self.length, *x.shape[2:]).index_select(0, self._gather)

    def real(self, x: torch.Tensor) -> torch.Tensor:
        """The first N (real) of packed rows: ``[rows, ...]`` -> ``[N, ...]``."""
        if x.size(0) == self.real_rows:
            return x
        if torch.is_grad_enabled() and x.requires_grad:
            return _FirstRows.apply(x, self.real_rows)
        return x[: self.real_rows]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``[rows, ...]`` -> ``[B, T, ...]``, zeros at the padding."""
        x = self.real(x)
        out = x.new_zeros(self.batch * self.length, *x.shape[1:])
        return out.index_copy(0, self.index, x).view(self.batch, self.length, *x.shape[1:])


class _FirstRows(torch.autograd.Function):
    """``x[:n]``, whose backward writes each element of the input's gradient once: the
    gradient, then zeros in the dropped rows. A slice's own backward zero-fills all of it
    first: for ``[7936, 8000]`` logits 25.1-25.6 against 16.2-16.7 ms on a Zen 5
    (``outputs/measured/2026-12-08_s27_zen5/first_rows_backward.log``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, n: int) -> torch.Tensor:
        ctx.rows = x.size(0)
        return x[:n]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        n = grad.size(0)
        out = grad.new_empty(ctx.rows, *grad.shape[1:])
        out[:n] = grad
        out[n:] = 0
        return out, None


def rounded_rows(n: int) -> int:
    """``n`` rounded up to a multiple of 1/32 of its leading power of two (2,400 -> 2,432, 100
    -> 100, 101 -> 102): at most 1/32 more rows, and 32 distinct counts an octave."""
    granule = max(1, (1 << (n.bit_length() - 1)) // 32)
    return -(-n // granule) * granule


def packing_for(x: torch.Tensor) -> bool:
    """Whether packings of ``x``'s tokens should round their row counts: when its matmuls run
    through oneDNN. In the 45-minute study's Transformer run the resident memory after 255
    updates was 2.77 GB with rounding against 4.47 without, and the step's speed was the same
    (0.987x, IQR 0.951-1.027, interleaved; ``outputs/measured/2026-12-07_s26_zen3``)."""
    return onednn_matmuls(x)


class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1..head_h) W^O``, ``head_i = Attention(QW_i^Q, KW_i^K, VW_i^V)``."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_k: int,
        d_v: int,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.dropout = dropout
        self.q_proj = Linear(d_model, n_heads * d_k, bias=bias)
        self.k_proj = Linear(d_model, n_heads * d_k, bias=bias)
        self.v_proj = Linear(d_model, n_heads * d_v, bias=bias)
        self.out_proj = Linear(n_heads * d_v, d_model, bias=bias)
        # Set by the caller that wants attention maps; kept as ``[B, h, T, S]``.
        self.last_weights: torch.Tensor | None = None
        self.keep_weights = False

    def _split(self, x: torch.Tensor, d: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, d).transpose(1, 2)

    def stacked_qkv(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """W^Q, W^K and W^V (and their biases) stacked into one projection in ``dtype``, for
        the steps of one incremental decoding (``forward(stacked_qkv=...)``). Built per decoding,
        not kept here: fused Adam updates weights without bumping their version, so a kept copy
        could not tell that it went stale."""
        linears = (self.q_proj, self.k_proj, self.v_proj)
        with torch.no_grad():
            weight = torch.cat([lin.weight for lin in linears]).to(dtype)
            bias = None
            if self.q_proj.bias is not None:
                bias = torch.cat([lin.bias for lin in linears]).to(dtype)
        return weight, bias

    def project_kv(self, memory: torch.Tensor) -> KVCache:
        """Keys and values of ``memory`` (the encoder output for cross-attention, computed once).

        Made contiguous here, once: a head-split view is not, and each decoding step's matmuls
        would otherwise copy it whole (a quarter of beam search time on a CPU).
        """
        k, v = self._projected(memory, (self.k_proj, self.v_proj), None)
        return KVCache(self._split(k, self.d_k).contiguous(), self._split(v, self.d_v).contiguous())

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | SelfAttentionCache | None = None,
        static_kv: bool = False,
        packing: Packing | None = None,
        stacked_qkv: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, SelfAttentionCache | None]:
        """Attend from ``query [B, T, d_model]`` to ``key_value [B, S, d_model]``.

        ``attn_mask`` is boolean, True where attention is *allowed*, broadcastable to
        ``[B, h, T, S]``. With a ``SelfAttentionCache`` (decoder self-attention) the new keys/values
        are appended to it and the grown cache is returned; with ``static_kv=True``
        (cross-attention) ``cache`` already holds the projected memory and ``key_value`` is
        ignored; it may hold ``B / K`` rows, each shared by ``K`` consecutive query rows (the
        beams of one sentence), and ``attn_mask`` then has ``B / K`` rows too. With ``packing``,
        ``query`` is packed ``[N, d_model]`` (and so is the output);
        so is the source in self-attention, while ``key_value`` stays padded.
        ``stacked_qkv`` (from :meth:`stacked_qkv`) projects a decoding step's Q, K and V by one
        matmul: self-attention with a cache only, without gradients, and when it is in the dtype
        the matmul runs in.
        """
        if stacked_qkv is not None and (
            torch.is_grad_enabled()  # the stack is detached: gradients must go through the three
            or not _runs_in(query, stacked_qkv[0].dtype)
            or cache is None
            or key_value is not None
            or static_kv
            or packing is not None
        ):
            stacked_qkv = None
        projected_kv = None
        if stacked_qkv is not None:
            widths = (self.n_heads * self.d_k, self.n_heads * self.d_k, self.n_heads * self.d_v)
            q, k_step, v_step = linear(query, *stacked_qkv).split(widths, dim=-1)
        elif cache is None and key_value is None:  # self-attention over whole sequences
            q, *projected_kv = self._projected(
                query, (self.q_proj, self.k_proj, self.v_proj), packing
            )
        else:
            q = self.q_proj(query)
            if packing is not None:
                q = packing.unpack(q)
        q = self._split(q, self.d_k)
        dropout_p = self.dropout if self.training else 0.0
        groups = 1
        if static_kv and cache is not None:
            k, v = cache.key, cache.value
            cache = None
            groups = q.size(0) // k.size(0)
            if groups > 1 and self.keep_weights:  # maps want one row of weights per beam
                k, v = k.repeat_interleave(groups, 0), v.repeat_interleave(groups, 0)
                if attn_mask is not None:
                    attn_mask = attn_mask.repeat_interleave(groups, 0)
                groups = 1
            if groups > 1:
                # Beam search: the K beams of a sentence share its keys and values, so their
                # queries go through one matmul against one copy (not K): [n, h, K*T, d].
                b_kv, h, t, d = k.size(0), self.n_heads, q.size(2), self.d_k
                q = q.reshape(b_kv, groups, h, t, d).transpose(1, 2).reshape(b_kv, h, groups * t, d)
        else:
            if stacked_qkv is not None:
                k, v = k_step, v_step
            elif projected_kv is not None:
                k, v = projected_kv
            elif key_value is not None:
                k, v = self._projected(key_value, (self.k_proj, self.v_proj), None)
            else:  # a decoding step's self-attention (with a cache, never packed)
                k, v = self.k_proj(query), self.v_proj(query)
            b, s, _ = k.shape
            k = k.view(b, s, self.n_heads, self.d_k)
            v = v.view(b, s, self.n_heads, self.d_v)
            if cache is not None:
                # Incremental decoding passes a (possibly empty) cache and gets the grown one back.
                cache = cache.append(k, v)
                if not self.keep_weights and dropout_p == 0.0:
                    return self._output(cache.attend(q), groups, packing), cache
                k, v = cache.key, cache.value
            else:
                k, v = k.transpose(1, 2), v.transpose(1, 2)
        if self.keep_weights:
            out = self._explicit_attention(q, k, v, attn_mask, is_causal, dropout_p)
        elif (
            (groups > 1 or q.size(2) == 1)
            and q.device.type == "cpu"
            and dropout_p == 0.0
            and not is_causal
        ):
            # A decoding step's cross-attention (one query per row, or a sentence's K beams'
            # queries together): two small batched matmuls beat SDPA's CPU kernel here (1.79 vs
            # 2.47 ms for 256 rows x 4 heads over 31 keys, 2 threads, fp32; in bf16 SDPA took
            # 2.75 ms). In bf16 the softmax is fp32, as in bf16 training. Every row has at least
            # one key to attend to (a source is never empty).
            # The native kernel does it all in one pass (fp32 softmax as well).
            out = native.attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask)
            if out is None:
                scores = (q @ k.transpose(-2, -1)).float().mul_(1.0 / math.sqrt(self.d_k))
                if attn_mask is not None:
                    scores = scores.masked_fill_(~attn_mask, float("-inf"))
                out = scores.softmax(dim=-1).to(v.dtype) @ v
        elif q.device.type == "cpu" and q.dtype == torch.bfloat16 and torch.is_grad_enabled():
            # bf16 training on a CPU: SDPA's CPU flash kernel has a slow bf16 backward (180 of
            # a 725 ms transformer_small step); the spelled-out maths, with the softmax in fp32
            # as fairseq and Megatron do, trains 1.3x faster (8,037 vs 6,093 tokens/s).
            out, _ = _attention_by_matmuls(q, k, v, attn_mask, is_causal, dropout_p, self.d_k)
        elif dropout_p == 0.0 and _native_attention_applies(q, k, v, attn_mask, is_causal):
            out = _NativeAttention.apply(q, k, v, attn_mask, is_causal)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
            )
        return self._output(out, groups, packing), cache

    def _projected(
        self, x: torch.Tensor, linears: tuple[nn.Linear, ...], packing: Packing | None
    ) -> list[torch.Tensor]:
        """``x`` through several projections of the same input (Q, K and V of self-attention;
        K and V of cross-attention) as one matmul with their weights stacked, unpacked once.
        h·d_k-wide projections are narrow matmuls: stacked, one input pass and one weight
        gradient replace three, and the input's gradient needs no sums. Each projection keeps
        its own parameters; one with hooks is called on its own so that its hooks run."""
        if any(lin._forward_hooks or lin._forward_pre_hooks for lin in linears):
            outs = [lin(x) for lin in linears]
            return [packing.unpack(out) for out in outs] if packing is not None else outs
        weight = torch.cat([lin.weight for lin in linears])
        bias = None if linears[0].bias is None else torch.cat([lin.bias for lin in linears])
        out = linear(x, weight, bias, packable=False)  # a new stack per call: nothing to pack
        if packing is not None:
            out = packing.unpack(out)
        return list(out.split([lin.out_features for lin in linears], dim=-1))

    def _output(self, out: torch.Tensor, groups: int, packing: Packing | None) -> torch.Tensor:
        """Heads ``[B, h, T, d_v]`` (``[B / K, h, K*T, d_v]`` for grouped beams) concatenated
        and projected by W^O: ``[B, T, d_model]`` (packed ``[N, d_model]`` with ``packing``)."""
        b, h, t, d = out.shape
        if groups > 1:
            out = out.view(b, h, groups, t // groups, d).permute(0, 2, 3, 1, 4)
            out = out.reshape(b * groups, t // groups, h * d)
        else:
            out = out.transpose(1, 2).reshape(b, t, h * d)
        if packing is not None:
            out = packing.pack(out)
        return self.out_proj(out)

    def _explicit_attention(self, q, k, v, attn_mask, is_causal, dropout_p):
        # Same maths as SDPA, spelled out so the softmax weights can be kept for plotting.
        out, weights = _attention_by_matmuls(q, k, v, attn_mask, is_causal, dropout_p, self.d_k)
        self.last_weights = weights.detach()
        return out


# The longest key sequence the native kernel takes: measured 1.2-1.6x faster than SDPA forward
# and backward up to 256 keys (fp32, d 64, 2 threads); longer ones are unmeasured.
NATIVE_ATTENTION_MAX_KEYS = 256


def _native_attention_applies(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
) -> bool:
    """Whether whole-sequence fp32 CPU attention (training, or a no-grad encoder pass) runs
    through the native kernel: up to NATIVE_ATTENTION_MAX_KEYS keys, head sizes multiples of
    16, key-padding or causal masks (:func:`native.training_attention_applies`)."""
    return (
        q.device.type == "cpu"
        # compiled: inductor's kernels (asked first: dynamo cannot trace the mode check below)
        and not torch.compiler.is_compiling()
        and _runs_in(q, torch.float32)
        and k.size(-2) <= NATIVE_ATTENTION_MAX_KEYS
        and not tracing_or_transformed()
        and native.training_attention_applies(q, k, v, attn_mask, is_causal)
    )


class _NativeAttention(torch.autograd.Function):
    """``softmax(q k^T / sqrt(d_k)) v`` by the native kernel, forward and backward: 1.22-1.56x
    SDPA's CPU flash kernel at the bench's shapes (``[264, 4, 31, 64]`` to ``[536, 4, 15, 64]``,
    fp32, 2 threads), whose time there goes to per-block overheads."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        out, lse = native.training_attention(q, k, v, attn_mask, is_causal)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.attn_mask, ctx.is_causal = attn_mask, is_causal
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        grads = native.training_attention_grad(
            q, k, v, out, lse, grad, ctx.attn_mask, ctx.is_causal
        )
        return (*grads, None, None)


def _runs_in(x: torch.Tensor, dtype: torch.dtype) -> bool:
    return matmul_dtype(x.device, x.dtype) == dtype


def _attention_by_matmuls(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    is_causal: bool,
    dropout_p: float,
    d_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T / sqrt(d_k)) v`` as SDPA computes it, the softmax in fp32 whatever the
    inputs' precision; returns the output and the attention weights (before dropout)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if is_causal:
        t, s = scores.shape[-2:]
        causal = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
        attn_mask = causal if attn_mask is None else attn_mask & causal
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(v.dtype)
    return F.dropout(weights, dropout_p, dropout_p > 0.0) @ v, weights


class AdditiveAttention(nn.Module):
    """Bahdanau et al. 2015 (§3.1, App. A.1.2): ``e_ij = v^T tanh(W s_{i-1} + U h_j)``.

    ``U h_j`` does not depend on the decoder step, so it is computed once per sentence
    (``precompute``) and reused at every step.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int):
        super().__init__()
        self.query_proj = Linear(query_size, hidden_size, bias=False)
        self.key_proj = Linear(key_size, hidden_size, bias=True)
        self.v = Linear(hidden_size, 1, bias=False)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_proj(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        pad_mask: torch.Tensor,
        step_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``[B, Q]``, keys ``[B, S, K]`` -> (context ``[B, K]``, weights ``[B, S]``);
        ``step_scores``: see :func:`additive_scores`."""
        scores = additive_scores(projected_keys, self.query_proj(query), self.v, step_scores)
        return attend(scores, keys, pad_mask)


def additive_scores(
    projected_keys: torch.Tensor,
    projected_query: torch.Tensor,
    v: nn.Linear,
    step_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``v^T tanh(k_j + q)``: scores ``[B, S]`` of projected keys ``[B, S, A]`` for one step's
    projected queries ``[B, A]``. ``step_scores(q, v.weight)`` computes them in teacher forcing
    (``AdditiveStepScores``); without gradients, fp32 CPU scores come from the native kernel,
    which reads the keys once and writes no ``[B, S, A]`` tensor; otherwise PyTorch's ops."""
    if step_scores is not None:
        return step_scores(projected_query, v.weight)
    if not torch.is_grad_enabled():
        scores = native.additive_scores(projected_keys, projected_query, v.weight)
        if scores is not None:
            return scores
    return v(torch.tanh(projected_keys + projected_query[:, None, :])).squeeze(-1)


class GlobalAttention(nn.Module):
    """Luong et al. 2015 (§3.1) global attention with score ``dot``, ``general`` or ``concat``.

    dot: ``h_t^T h_s``; general: ``h_t^T W_a h_s``; concat: ``v_a^T tanh(W_a [h_t; h_s])``.
    """

    def __init__(self, query_size: int, key_size: int, score: str = "general"):
        super().__init__()
        if score not in ("dot", "general", "concat"):
            raise ValueError(f"unknown attention score {score!r}")
        if score == "dot" and query_size != key_size:
            raise ValueError(f"dot attention needs equal sizes, got {query_size} and {key_size}")
        self.score = score
        if score == "general":
            self.key_proj = Linear(key_size, query_size, bias=False)
        elif score == "concat":
            self.key_proj = Linear(key_size, query_size, bias=True)
            self.query_proj = Linear(query_size, query_size, bias=False)
            self.v = Linear(query_size, 1, bias=False)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return keys if self.score == "dot" else self.key_proj(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        pad_mask: torch.Tensor,
        step_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and alignment for one decoder step's queries ``[B, Q]`` (``[B, K]`` and
        ``[B, S]``), or for all steps' at once, ``[B, T, Q]`` (``[B, T, K]`` and ``[B, T, S]``).
        A decoder that feeds nothing of the attention back (Luong without input feeding) can
        attend for all its steps in one batched matmul. ``step_scores`` (one step, score
        ``concat``): see :func:`additive_scores`."""
        if query.dim() == 3:
            if self.score == "concat":
                query = self.query_proj(query)[:, :, None, :]  # [B, T, 1, A]
                scores = self.v(torch.tanh(projected_keys[:, None] + query)).squeeze(-1)
            else:
                scores = torch.bmm(query, projected_keys.transpose(1, 2))
            return attend(scores, keys, pad_mask[:, None, :])
        if self.score == "concat":
            scores = additive_scores(projected_keys, self.query_proj(query), self.v, step_scores)
        else:
            scores = torch.bmm(projected_keys, query[:, :, None]).squeeze(-1)
        return attend(scores, keys, pad_mask)


def attend(
    scores: torch.Tensor, keys: torch.Tensor, pad_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The RNN attentions' context ``[B, K]`` and alignment ``[B, S]`` from ``scores [B, S]``
    (or ``[B, T, K]`` and ``[B, T, S]`` from ``[B, T, S]``, ``pad_mask [B, 1, S]``). The softmax
    runs in fp32 at least (bf16 scores under autocast; fp64 stays fp64), as in the
    Transformer's attention; the weights stay in that precision for the maps and the copy layer."""
    precision = torch.promote_types(scores.dtype, torch.float32)
    weights = scores.to(precision).masked_fill(pad_mask, float("-inf")).softmax(dim=-1)
    if weights.dim() == 3:
        return torch.bmm(weights.to(keys.dtype), keys), weights
    return torch.bmm(weights[:, None, :].to(keys.dtype), keys).squeeze(1), weights
