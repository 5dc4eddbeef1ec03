"""Key/value caches for incremental decoding: the cross-attention's, computed once from the
encoder output, and the decoder self-attention's, which grows by one step at a time and follows
beam parents without moving what it holds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnlab import native


def whole_sentences(index: torch.Tensor, beams: int) -> torch.Tensor | None:
    """The sentences of decoder rows ``index`` (``beams`` rows per sentence) when it takes them
    whole, ``beams`` rows at a time all of one sentence; ``None`` when it splits one."""
    sentences = index[::beams] // beams
    if index.numel() % beams or not torch.equal(index // beams, sentences.repeat_interleave(beams)):
        return None
    return sentences


@dataclass
class KVCache:
    """Keys and values seen so far by one attention layer, ``[B, h, t, d]`` each."""

    key: torch.Tensor
    value: torch.Tensor

    def index_select(self, index: torch.Tensor) -> KVCache:
        return KVCache(self.key.index_select(0, index), self.value.index_select(0, index))


@dataclass
class _TimeMajorBuffers:
    key: torch.Tensor  # [capacity, B, h, d_k]
    value: torch.Tensor  # [capacity, B, h, d_v]
    filled: int  # steps written so far, by whichever cache wrote last


def _must_copy(
    buffers: _TimeMajorBuffers | _BeamBuffers,
    length: int,
    end: int,
    capacity: int,
    dtype: torch.dtype,
) -> bool:
    """Whether a cache of ``length`` steps must copy its buffers before writing up to ``end``:
    another cache has written past it (copy on write), they are full, or the new keys come in
    another dtype (the first step under autocast: bf16 keys)."""
    return buffers.filled != length or end > capacity or buffers.key.dtype != dtype


class GrowingKVCache:
    """Decoder self-attention keys and values of one decoder row each (greedy search, teacher
    forcing through the cache): one write per step.

    They live in time-major buffers ``[capacity, B, h, d]``. A step writes its keys and values at
    position ``length``, so nothing already cached is copied (``torch.cat`` copies the whole
    past at every step; that was 12% of beam search on a CPU). ``index_select`` copies the
    ``length`` filled steps into a new buffer's prefix, which is contiguous in this layout.
    ``key`` and ``value`` are ``[B, h, length, d]`` views. Beam search moves to
    :class:`BeamKVCache` (``expand_beams``), whose beams share their sentence's past.

    The cache a step returns shares its buffers with the one it was given. A cache writes in
    place only when nothing was written past its own length; otherwise it copies its prefix
    first, so an older cache stays valid and two continuations of it cannot overwrite each other.
    """

    def __init__(self, buffers: _TimeMajorBuffers, length: int):
        self._buffers, self.length = buffers, length

    @classmethod
    def empty(
        cls, like: torch.Tensor, batch: int, n_heads: int, d_k: int, d_v: int, capacity: int = 32
    ) -> GrowingKVCache:
        """An empty cache with room for ``capacity`` steps (it doubles when full), in ``like``'s
        dtype and device."""
        key = like.new_empty(capacity, batch, n_heads, d_k)
        return cls(_TimeMajorBuffers(key, like.new_empty(capacity, batch, n_heads, d_v), 0), 0)

    @property
    def key(self) -> torch.Tensor:
        return self._buffers.key[: self.length].permute(1, 2, 0, 3)

    @property
    def value(self) -> torch.Tensor:
        return self._buffers.value[: self.length].permute(1, 2, 0, 3)

    def _copy(
        self,
        capacity: int,
        index: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> _TimeMajorBuffers:
        """New buffers holding this cache's ``length`` steps (rows ``index`` of them, if given)."""
        old, n = self._buffers, self.length
        rows = old.key.size(1) if index is None else index.numel()
        dtype = dtype or old.key.dtype
        new = _TimeMajorBuffers(
            old.key.new_empty(capacity, rows, *old.key.shape[2:], dtype=dtype),
            old.value.new_empty(capacity, rows, *old.value.shape[2:], dtype=dtype),
            n,
        )
        for src, dst in ((old.key, new.key), (old.value, new.value)):
            if index is None:
                dst[:n].copy_(src[:n])
            else:
                torch.index_select(src[:n], 1, index, out=dst[:n])
        return new

    def append(self, key: torch.Tensor, value: torch.Tensor) -> GrowingKVCache:
        """The cache with ``key [B, t, h, d_k]`` and ``value [B, t, h, d_v]`` added after it."""
        end = self.length + key.size(1)
        buffers, capacity = self._buffers, self._buffers.key.size(0)
        if _must_copy(buffers, self.length, end, capacity, key.dtype):
            buffers = self._copy(max(capacity, 2 * end), dtype=key.dtype)
        buffers.key[self.length : end] = key.transpose(0, 1)
        buffers.value[self.length : end] = value.transpose(0, 1)
        buffers.filled = end
        return GrowingKVCache(buffers, end)

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d_k)) v`` of each row's queries ``[B, h, T, d_k]`` over every
        cached step (no causal mask), the softmax in fp32: ``[B, h, T, d_v]``.

        Two small batched matmuls beat SDPA's CPU kernel for a decoding step (1.79 vs 2.47 ms
        for 256 rows x 4 heads over 31 keys, 2 threads, fp32; in bf16 SDPA took 2.75 ms). The
        scores are ``(k q^T)^T``: the keys are time-major, and a bf16 matmul over their
        transpose is slow (3.7 vs 0.85 ms over 32 keys); this form reads them as they lie.
        """
        key, value = self.key, self.value
        query = query.to(key.dtype)
        scores = (key @ query.transpose(-2, -1)).transpose(-2, -1)
        scores = scores.float().mul_(1.0 / math.sqrt(key.size(-1)))
        return scores.softmax(dim=-1).to(value.dtype) @ value

    def index_select(self, index: torch.Tensor) -> GrowingKVCache:
        return GrowingKVCache(self._copy(self._buffers.key.size(0), index), self.length)

    def expand_beams(self, beams: int) -> BeamKVCache:
        """This cache of n sentences for ``beams`` beams each (rows ``n * beams``), all
        descending from the sentence's one row: its steps go to every beam's first slot."""
        old, length = self._buffers, self.length
        new = []
        for src in (old.key, old.value):
            capacity, n, h, d = src.shape
            dst = src.new_empty(n, h, capacity, beams, d)
            # The other slots of these steps are never anyone's ancestors, but their weight
            # (zero) multiplies them in ``attend``: zeros, not garbage that may be NaN.
            dst[:, :, :length].zero_()
            dst[:, :, :length, 0] = src[:length].permute(1, 2, 0, 3)
            new.append(dst)
        rows = old.key.size(1) * beams
        ancestry = torch.zeros(rows, length, dtype=torch.long, device=old.key.device)
        return BeamKVCache(_BeamBuffers(new[0], new[1], length), ancestry)


@dataclass
class _BeamBuffers:
    key: torch.Tensor  # [n, h, capacity, K, d_k]: sentence, head, step, beam slot
    value: torch.Tensor  # [n, h, capacity, K, d_v]
    filled: int  # steps written so far, by whichever cache wrote last


class BeamKVCache:
    """Decoder self-attention keys and values in beam search: K beams per sentence share the
    steps they have in common, and following beam parents moves no keys or values.

    Decoder rows are sentence-major: row ``r`` is beam slot ``r % K`` of sentence ``r // K``.
    Step ``j`` of every slot is written once, at ``[:, :, j]`` of buffers laid out
    ``[n, h, capacity, K, d]``, and never moves. A row's past is its ancestors' steps:
    ``ancestry [rows, length]`` holds, per step, the slot of its sentence that the row descends
    from. Following beam parents (``index_select`` with rows of the same sentences) gathers only
    this small table; keys and values are copied only when sentences leave the batch. The
    attention (``attend``) scores a sentence's K queries against all K slots' keys in one matmul
    and keeps, per step, each row's ancestor's score (K times the multiply-adds of attending to
    a gathered copy, but those are few; the copying they replace was a fifth of beam search
    time on a CPU).

    Buffers are shared and written in place as in :class:`GrowingKVCache`, with the same
    copy-on-write rule for a cache continued twice.
    """

    def __init__(self, buffers: _BeamBuffers, ancestry: torch.Tensor):
        self._buffers, self.ancestry = buffers, ancestry

    @property
    def length(self) -> int:
        return self.ancestry.size(1)

    @property
    def beams(self) -> int:
        return self._buffers.key.size(3)

    @property
    def key(self) -> torch.Tensor:
        """Each row's keys ``[rows, h, length, d_k]`` (a gathered copy)."""
        return self._gather(self._buffers.key)

    @property
    def value(self) -> torch.Tensor:
        """Each row's values ``[rows, h, length, d_v]`` (a gathered copy)."""
        return self._gather(self._buffers.value)

    def _gather(self, buffer: torch.Tensor) -> torch.Tensor:
        rows, length, k = self.ancestry.size(0), self.length, self.beams
        sentences = torch.arange(rows, device=buffer.device) // k
        per_row = buffer[:, :, :length].index_select(0, sentences)  # [rows, h, length, K, d]
        slot = self.ancestry[:, None, :, None, None]
        return per_row.gather(3, slot.expand(-1, buffer.size(1), -1, 1, buffer.size(4))).squeeze(3)

    def _copy(
        self, capacity: int, sentences: torch.Tensor | None = None, dtype: torch.dtype | None = None
    ) -> _BeamBuffers:
        """New buffers holding this cache's ``length`` steps (of ``sentences`` only, if given)."""
        old, n = self._buffers, self.length
        new = []
        for src in (old.key, old.value):
            prefix = src[:, :, :n]
            if sentences is not None:
                prefix = prefix.index_select(0, sentences)
            shape = (*prefix.shape[:2], capacity, *prefix.shape[3:])
            dst = prefix.new_empty(shape, dtype=dtype or prefix.dtype)
            dst[:, :, :n] = prefix
            new.append(dst)
        return _BeamBuffers(new[0], new[1], n)

    def append(self, key: torch.Tensor, value: torch.Tensor) -> BeamKVCache:
        """The cache with ``key [rows, t, h, d_k]`` and ``value [rows, t, h, d_v]`` added after
        it (each row's own steps, in its own slot)."""
        t, length, k = key.size(1), self.length, self.beams
        end = length + t
        buffers, capacity = self._buffers, self._buffers.key.size(2)
        if _must_copy(buffers, length, end, capacity, key.dtype):
            buffers = self._copy(max(capacity, 2 * end), dtype=key.dtype)
        for src, dst in ((key, buffers.key), (value, buffers.value)):
            rows, _, h, d = src.shape
            dst[:, :, length:end] = src.view(rows // k, k, t, h, d).permute(0, 3, 2, 1, 4)
        buffers.filled = end
        rows = self.ancestry.size(0)
        own = (torch.arange(rows, device=key.device) % k)[:, None].expand(rows, t)
        return BeamKVCache(buffers, torch.cat([self.ancestry, own], dim=1))

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d_k)) v`` of each row's query ``[rows, h, 1, d_k]`` over its own
        past (every step it descends from), the softmax in fp32: ``[rows, h, 1, d_v]``."""
        k, length = self.beams, self.length
        rows, h, t, d_k = query.shape
        if t != 1:
            raise ValueError(f"a beam cache takes one query per row, got {t}")
        out = native.beam_self_attention(
            query, self._buffers.key, self._buffers.value, self.ancestry
        )
        if out is not None:
            return out
        key, value = self._buffers.key[:, :, :length], self._buffers.value[:, :, :length]
        n = rows // k
        grouped = query.to(key.dtype).reshape(n, k, h, d_k).transpose(1, 2)  # [n, h, K, d_k]
        keys = key.reshape(n, h, length * k, d_k)
        slot = self.ancestry.view(n, 1, k, length, 1).expand(n, h, k, length, 1)
        if keys.dtype == torch.bfloat16:
            # Keys times queries, [n, h, steps, slot, K]: oneDNN's bf16 matmul takes this form
            # 1.5x faster than q k^T over the buffers' strided batches (0.67 vs 1.0 ms, 31 steps).
            every_slot = (keys @ grouped.transpose(-2, -1)).view(n, h, length, k, k)
            ancestor = self.ancestry.view(n, k, length).transpose(1, 2)  # [n, steps, K]
            pick = ancestor[:, None, :, None, :].expand(n, h, length, 1, k)
            scores = every_slot.gather(3, pick).squeeze(3).transpose(-2, -1)
        else:
            every_slot = (grouped @ keys.transpose(-2, -1)).view(n, h, k, length, k)
            scores = every_slot.gather(-1, slot).squeeze(-1)  # [n, h, K, steps]
        weights = scores.float().mul_(1.0 / math.sqrt(d_k)).softmax(dim=-1).to(value.dtype)
        spread = torch.zeros(n, h, k, length, k, dtype=value.dtype, device=value.device)
        spread.scatter_(-1, slot, weights.unsqueeze(-1))  # each step's weight on its ancestor
        out = spread.view(n, h, k, length * k) @ value.reshape(n, h, length * k, -1)
        return out.transpose(1, 2).reshape(rows, h, 1, -1)

    def index_select(self, index: torch.Tensor) -> BeamKVCache | GrowingKVCache:
        """The cache of rows ``index``. When those take whole sentences, each row of a sentence
        from a row of that sentence (beam parents; finished sentences dropped), only the ancestry
        is gathered, and the buffers are copied only if sentences left or moved. Any other
        selection gets a :class:`GrowingKVCache` of the rows' gathered pasts."""
        sentences = whole_sentences(index, self.beams)
        if sentences is None:
            return self._one_beam_per_row(index)
        ancestry = self.ancestry.index_select(0, index)
        n = self._buffers.key.size(0)
        if sentences.numel() == n and torch.equal(
            sentences, torch.arange(n, device=sentences.device)
        ):
            return BeamKVCache(self._buffers, ancestry)
        return BeamKVCache(self._copy(self._buffers.key.size(2), sentences), ancestry)

    def _one_beam_per_row(self, index: torch.Tensor) -> GrowingKVCache:
        capacity, length = self._buffers.key.size(2), self.length
        new = []
        for rows in (self.key.index_select(0, index), self.value.index_select(0, index)):
            dst = rows.new_empty(capacity, rows.size(0), rows.size(1), rows.size(3))
            dst[:length] = rows.permute(2, 0, 1, 3)
            new.append(dst)
        return GrowingKVCache(_TimeMajorBuffers(new[0], new[1], length), length)


# What decoder self-attention caches: one beam per row, or beams sharing their sentence's past.
SelfAttentionCache = GrowingKVCache | BeamKVCache
