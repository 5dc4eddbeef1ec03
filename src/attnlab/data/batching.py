"""Token-budget batching: batches sized by padded tokens, not by sentence count.

Why
---
A seq2seq batch is a rectangle: ``batch_size x max_len`` (after padding). With a fixed number
of sentences per batch drawn at random from a corpus whose lengths range from 5 to 100 tokens,
most of every rectangle is padding: the one long sentence sets ``max_len`` and the short ones
are padded to it. That padding costs memory and FLOPs (attention is even quadratic in it) and
the real work per step swings wildly with the luck of the draw, so a batch size that is safe
for the longest batch wastes the GPU on every other one.

Fairseq's answer (``--max-tokens``), which we follow:

1. sort the examples by length, so neighbours have (nearly) the same length;
2. cut the sorted list greedily into batches whose *padded* size
   ``len(batch) * max(lengths in batch)`` stays within a token budget ``max_tokens``
   (optionally also at most ``max_sentences`` examples);
3. shuffle the *order of the batches* every epoch, so training still sees the data in a random
   order while each batch stays length-homogeneous.

The result is batches of many short sentences or few long ones, each close to the same padded
size (a stable memory footprint and step time) and with very little padding.

Randomness between epochs comes from a seeded tie-break among equal lengths (and an optional
``bucket_noise`` on the sort key), and from the batch-order shuffle. Everything is drawn from
``np.random.default_rng((seed, epoch))``, so a given ``(seed, epoch)`` yields the same batches
in the same order on every call and in every process: that is what makes DDP sharding and
mid-epoch resumption possible.

DDP
---
Every rank builds the same full list of batches, pads it (repeating batches from its start) or,
with ``drop_last``, truncates it to a multiple of ``num_replicas`` and takes
``batches[rank::num_replicas]``. All ranks therefore get the same number of batches (a rank
with fewer would leave the others hanging in an all-reduce), and together they cover every
example. Under Lightning with a distributed strategy pass ``Trainer(use_distributed_sampler=
False)``: the sampler shards itself, and Lightning cannot inject a ``DistributedSampler`` into a
batch sampler that is not a ``torch.utils.data.BatchSampler``.

Resumption
----------
:meth:`TokenBudgetBatchSampler.state_dict` records the epoch and how many batches this rank has
yielded in it; :meth:`~TokenBudgetBatchSampler.load_state_dict` (or
:meth:`~TokenBudgetBatchSampler.set_start_batch`) makes the next ``__iter__`` skip that many
batches, after which later epochs start from 0 again. Note that a ``DataLoader`` with workers
pulls batches from its batch sampler ahead of the training loop (``num_workers *
prefetch_factor`` of them), so the sampler's own count can run ahead of the batches actually
trained on; a wrapper that knows how many batches were consumed should put that number in
``batches_yielded`` before saving.

Example
-------
>>> lengths = [max(len(s), len(t)) + 2 for s, t in pairs]  # doctest: +SKIP
>>> sampler = TokenBudgetBatchSampler(lengths, max_tokens=4096, seed=1)  # doctest: +SKIP
>>> loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)  # doctest: +SKIP
>>> for epoch in range(n_epochs):  # doctest: +SKIP
...     sampler.set_epoch(epoch)
...     for batch in loader: ...
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["TokenBudgetBatchSampler"]


@dataclass(frozen=True)
class _EpochPlan:
    """The batching of one epoch, shared by all ranks.

    ``order[starts[b]:ends[b]]`` are the example indices of batch ``b``; ``schedule`` lists batch
    ids in the order they are served, already shuffled and padded/truncated to a multiple of
    ``num_replicas`` (rank ``r`` serves ``schedule[r::num_replicas]``).
    """

    epoch: int
    order: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    schedule: np.ndarray


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batch sampler with a padded-token budget per batch (fairseq ``--max-tokens``).

    Args:
        lengths: cost length of every example, e.g. ``max(src_len, tgt_len)`` including special
            tokens. Non-negative integers.
        max_tokens: budget for ``len(batch) * max(lengths in batch)``.
        shuffle: randomise the tie-break among equal lengths and the order of batches per epoch.
            ``False`` gives batches in sorted order with no randomness (validation / test).
        seed: base seed; all randomness comes from ``np.random.default_rng((seed, epoch))``.
        num_replicas: number of DDP ranks; ``None`` reads it from ``torch.distributed`` when it is
            initialised, else 1.
        rank: this process' rank; ``None`` reads it from ``torch.distributed``, else 0.
        max_sentences: optional cap on the number of examples per batch.
        bucket_noise: with ``shuffle``, add uniform noise in ``[-bucket_noise, bucket_noise]``
            tokens to the sort key, so that examples of nearby (not just equal) lengths mix
            across epochs. The budget is always checked against the true lengths. Ignored when
            ``shuffle`` is ``False``.
        drop_last: when the number of batches is not a multiple of ``num_replicas``, drop the
            tail instead of repeating batches from the start.
        tie_break: optional second sort key, one integer per example, ordering examples of
            equal (noised) length before the random tie-break, e.g. target minus source length,
            so that a batch's examples also agree on both sides' lengths. Its direction
            alternates from one length to the next, so a batch that spans two lengths joins
            examples that are alike where they meet.

    Raises:
        ValueError: on bad arguments, or if an example alone exceeds ``max_tokens``.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        max_sentences: int | None = None,
        bucket_noise: float = 0.0,
        drop_last: bool = False,
        tie_break: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.lengths = _as_lengths(lengths)
        self.tie_break = np.zeros(self.lengths.size, dtype=np.int64)
        if tie_break is not None:
            self.tie_break = np.asarray(tie_break)
            if self.tie_break.shape != self.lengths.shape:
                raise ValueError(
                    f"tie_break must have one entry per example ({self.lengths.size}), "
                    f"got shape {self.tie_break.shape}"
                )
        if int(max_tokens) != max_tokens or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.max_tokens = int(max_tokens)
        if max_sentences is not None and (int(max_sentences) != max_sentences or max_sentences < 1):
            raise ValueError(
                f"max_sentences must be a positive integer or None, got {max_sentences!r}"
            )
        self.max_sentences = None if max_sentences is None else int(max_sentences)
        if not bucket_noise >= 0:  # also rejects NaN
            raise ValueError(f"bucket_noise must be >= 0, got {bucket_noise!r}")
        self.bucket_noise = float(bucket_noise)
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)

        too_long = np.flatnonzero(self.lengths > self.max_tokens)
        if too_long.size:
            i = int(too_long[0])
            raise ValueError(
                f"example {i} has length {int(self.lengths[i])} > max_tokens={self.max_tokens} "
                f"({too_long.size} example(s) too long in total); raise max_tokens or filter "
                "long examples out of the dataset"
            )

        self.num_replicas, self.rank = _resolve_replicas(num_replicas, rank)
        self.epoch = 0
        self._start_batch = 0  # batches of `self.epoch` to skip on the next __iter__
        self._position = 0  # batches of `self.epoch` this rank has yielded (incl. skipped ones)
        self._plan: _EpochPlan | None = None
        # Lightning advances the epoch of ``dataloader.batch_sampler.sampler`` (where a
        # DistributedSampler would sit), never of the batch sampler itself: answer there.
        self.sampler = _EpochForwarder(self)

    # ----------------------------------------------------------------------------- epoch / state
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches ``__iter__`` yields (call before every epoch).

        Moving to a different epoch discards a pending skip from :meth:`set_start_batch` or
        :meth:`load_state_dict`, which belongs to the epoch it was recorded for; setting the same
        epoch again (as Lightning does after a resume) keeps it.
        """
        if int(epoch) != epoch or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        epoch = int(epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self._start_batch = 0
            self._position = 0

    def set_start_batch(self, n: int) -> None:
        """Make the next ``__iter__`` skip this rank's first ``n`` batches of the current epoch."""
        if int(n) != n or n < 0:
            raise ValueError(f"start batch must be a non-negative integer, got {n!r}")
        self._start_batch = int(n)
        self._position = int(n)

    def state_dict(self) -> dict[str, int]:
        """Epoch and number of batches this rank has yielded in it (what a resume must skip)."""
        return {
            "epoch": self.epoch,
            "batches_yielded": self._position,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`: the next ``__iter__`` resumes the saved epoch where it stopped.

        If the number of replicas changed, the skip is converted through the global batch count
        and rounded down, so no batch is skipped that was not trained on (a few may repeat).
        """
        seed = int(state.get("seed", self.seed))
        if seed != self.seed:
            warnings.warn(
                f"resuming a TokenBudgetBatchSampler saved with seed={seed} under seed={self.seed}: "
                "the skipped batches are not the ones that were trained on",
                stacklevel=2,
            )
        epoch = int(state["epoch"])
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        done = int(state.get("batches_yielded", 0))
        saved_replicas = int(state.get("num_replicas", self.num_replicas))
        if saved_replicas != self.num_replicas:
            done = done * saved_replicas // self.num_replicas
        self.epoch = epoch
        self.set_start_batch(done)

    # --------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[list[int]]:
        plan = self._epoch_plan()
        mine = plan.schedule[self.rank :: self.num_replicas]
        start = self._start_batch
        self._start_batch = 0  # the skip applies once; following epochs start from 0
        self._position = start
        order, starts, ends = plan.order, plan.starts, plan.ends
        for b in mine[start:].tolist():
            self._position += 1
            yield order[starts[b] : ends[b]].tolist()

    def __len__(self) -> int:
        """Batches per epoch on this rank (the full epoch, regardless of a pending skip)."""
        return len(self._epoch_plan().schedule) // self.num_replicas

    def padding_fraction(self) -> float:
        """Share of padding in this epoch's batches, over all ranks (incl. repeated batches).

        ``1 - sum(real tokens) / sum(len(batch) * max_len(batch))``; 0.0 for an empty epoch.
        """
        plan = self._epoch_plan()
        if plan.schedule.size == 0:
            return 0.0
        sorted_lengths = self.lengths[plan.order]
        real = np.add.reduceat(sorted_lengths, plan.starts)[plan.schedule].sum(dtype=np.float64)
        longest = np.maximum.reduceat(sorted_lengths, plan.starts)
        padded = ((plan.ends - plan.starts) * longest)[plan.schedule].sum(dtype=np.float64)
        return 0.0 if padded == 0 else float(1.0 - real / padded)

    # ---------------------------------------------------------------------------------- planning
    def _epoch_plan(self) -> _EpochPlan:
        if self._plan is None or self._plan.epoch != self.epoch:
            self._plan = self._build_plan(self.epoch)
        return self._plan

    def _build_plan(self, epoch: int) -> _EpochPlan:
        n = self.lengths.size
        # Ascending at even lengths, descending at odd ones (a snake through the length grid).
        tie_break = self.tie_break * np.where(self.lengths % 2 == 0, 1, -1)
        if self.shuffle:
            rng = np.random.default_rng((self.seed, epoch))
            key = self.lengths.astype(np.float64)
            if self.bucket_noise > 0:
                key = key + rng.uniform(-self.bucket_noise, self.bucket_noise, size=n)
            # Sort by key, then tie_break, then a random permutation (primary key is the last).
            order = np.lexsort((rng.permutation(n), tie_break, key))
        else:
            rng = None
            order = np.lexsort((tie_break, self.lengths))  # stable

        starts, ends = _greedy_cut(self.lengths[order], self.max_tokens, self.max_sentences)
        n_batches = starts.size
        schedule = rng.permutation(n_batches) if rng is not None else np.arange(n_batches)

        remainder = n_batches % self.num_replicas
        if remainder:
            if self.drop_last:
                schedule = schedule[: n_batches - remainder]
            else:  # repeat batches from the start (cycling if there are fewer than needed)
                extra = self.num_replicas - remainder
                schedule = np.concatenate([schedule, np.resize(schedule, extra)])
        return _EpochPlan(epoch=epoch, order=order, starts=starts, ends=ends, schedule=schedule)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self.lengths.size}, max_tokens={self.max_tokens}, "
            f"max_sentences={self.max_sentences}, shuffle={self.shuffle}, seed={self.seed}, "
            f"epoch={self.epoch}, rank={self.rank}/{self.num_replicas})"
        )


class _EpochForwarder:
    """Stands where Lightning looks for ``set_epoch`` and forwards it to the batch sampler."""

    def __init__(self, owner: TokenBudgetBatchSampler):
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


def _greedy_cut(
    sorted_lengths: np.ndarray, max_tokens: int, max_sentences: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a (roughly) length-sorted sequence into consecutive batches within the budget.

    Returns ``starts, ends`` (half-open) of the batches. A running maximum is kept so that the
    budget holds even when ``bucket_noise`` leaves the lengths slightly out of order. O(N).
    """
    cap = max_sentences if max_sentences is not None else len(sorted_lengths) + 1
    starts: list[int] = []
    start, longest = 0, 0
    for i, length in enumerate(sorted_lengths.tolist()):
        new_longest = length if length > longest else longest
        size = i - start + 1
        if i > start and (size * new_longest > max_tokens or size > cap):
            starts.append(start)
            start, new_longest = i, length
        longest = new_longest
    if len(sorted_lengths):
        starts.append(start)
    starts_arr = np.asarray(starts, dtype=np.int64)
    ends_arr = np.append(starts_arr[1:], len(sorted_lengths)).astype(np.int64)
    return starts_arr, ends_arr


def _as_lengths(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        integral = np.issubdtype(arr.dtype, np.floating) and bool(
            np.all(np.isfinite(arr) & (arr == np.floor(arr)))
        )
        if not integral:
            raise ValueError("lengths must be integers")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        i = int(np.argmin(arr))
        raise ValueError(f"lengths must be non-negative; example {i} has length {int(arr[i])}")
    return arr


def _resolve_replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    dist_on = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if dist_on else 1
    if rank is None:
        rank = torch.distributed.get_rank() if dist_on else 0
    if int(num_replicas) != num_replicas or num_replicas < 1:
        raise ValueError(f"num_replicas must be a positive integer, got {num_replicas!r}")
    if int(rank) != rank or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, {num_replicas}), got {rank!r}")
    return int(num_replicas), int(rank)
