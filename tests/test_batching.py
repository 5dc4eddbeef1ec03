"""Tests for the token-budget batch sampler (attnlab.data.batching)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from attnlab.data.batching import TokenBudgetBatchSampler


def sentence_lengths(n: int, seed: int = 0, low: int = 5, high: int = 40) -> np.ndarray:
    """Sentence-like lengths: skewed towards short, clipped to [low, high]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(mean=2.8, sigma=0.45, size=n)), low, high).astype(int)


def batches_of(sampler: TokenBudgetBatchSampler, epoch: int | None = None) -> list[list[int]]:
    if epoch is not None:
        sampler.set_epoch(epoch)
    return [list(b) for b in sampler]


def padded_cost(batch: list[int], lengths: np.ndarray) -> int:
    return len(batch) * int(lengths[batch].max())


# ------------------------------------------------------------------------------- budget & cover
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("max_tokens", [40, 257, 1000])
def test_every_batch_respects_max_tokens(shuffle: bool, max_tokens: int) -> None:
    lengths = sentence_lengths(2000)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens, shuffle=shuffle, seed=3)
    batches = batches_of(sampler, epoch=1)
    assert batches
    assert all(padded_cost(b, lengths) <= max_tokens for b in batches)


def test_batches_are_filled_greedily_up_to_the_budget() -> None:
    # Sorted lengths 10,10,10,10,20,20,20 with budget 40: [10x4] then [20,20] then [20].
    lengths = [20, 10, 20, 10, 10, 20, 10]
    sampler = TokenBudgetBatchSampler(lengths, 40, shuffle=False)
    assert batches_of(sampler) == [[1, 3, 4, 6], [0, 2], [5]]


def test_every_example_appears_exactly_once_per_epoch() -> None:
    lengths = sentence_lengths(3001)
    sampler = TokenBudgetBatchSampler(lengths, 500, seed=7, num_replicas=1, rank=0)
    for epoch in range(3):
        flat = [i for b in batches_of(sampler, epoch) for i in b]
        assert len(flat) == len(lengths)
        assert sorted(flat) == list(range(len(lengths)))


def test_max_sentences_caps_batch_size() -> None:
    lengths = np.full(100, 5)
    sampler = TokenBudgetBatchSampler(lengths, 10_000, max_sentences=8, shuffle=False)
    sizes = [len(b) for b in sampler]
    assert max(sizes) == 8
    assert sum(sizes) == 100


def test_bucket_noise_still_respects_budget_and_covers_all() -> None:
    lengths = sentence_lengths(2000, seed=1)
    sampler = TokenBudgetBatchSampler(lengths, 300, seed=2, bucket_noise=3.0)
    for epoch in range(2):
        batches = batches_of(sampler, epoch)
        assert all(padded_cost(b, lengths) <= 300 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_works_as_dataloader_batch_sampler() -> None:
    class Seqs(Dataset):
        def __init__(self, lengths: np.ndarray) -> None:
            self.lengths = lengths

        def __len__(self) -> int:
            return len(self.lengths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.ones(int(self.lengths[i]), dtype=torch.long)

    def collate(items: list[torch.Tensor]) -> torch.Tensor:
        return torch.nn.utils.rnn.pad_sequence(items, batch_first=True)

    lengths = sentence_lengths(300)
    sampler = TokenBudgetBatchSampler(lengths, 200, seed=0)
    loader = DataLoader(Seqs(lengths), batch_sampler=sampler, collate_fn=collate)
    padded = list(loader)
    assert len(padded) == len(sampler) == len(loader)
    assert all(x.numel() <= 200 for x in padded)
    assert sum(int(x.sum()) for x in padded) == int(lengths.sum())


# ------------------------------------------------------------------------------- determinism
def test_same_seed_and_epoch_give_identical_batches() -> None:
    lengths = sentence_lengths(1500)
    a = TokenBudgetBatchSampler(lengths, 400, seed=11)
    b = TokenBudgetBatchSampler(lengths, 400, seed=11)
    first = batches_of(a, epoch=4)
    assert first == batches_of(a, epoch=4)  # repeat call, same object
    assert first == batches_of(b, epoch=4)  # fresh object ("another process")
    b.set_epoch(5)
    assert first == batches_of(b, epoch=4)  # no hidden state carried across epochs


def test_different_epochs_give_different_batch_order_and_membership() -> None:
    lengths = sentence_lengths(1500)
    sampler = TokenBudgetBatchSampler(lengths, 400, seed=11)
    e0, e1 = batches_of(sampler, 0), batches_of(sampler, 1)
    assert e0 != e1
    assert [b[0] for b in e0] != [b[0] for b in e1]  # order of batches changed
    # ties among equal lengths are broken randomly, so batch contents change as well
    assert {tuple(sorted(b)) for b in e0} != {tuple(sorted(b)) for b in e1}


def test_shuffled_batch_order_is_not_length_sorted_and_changes_per_epoch() -> None:
    lengths = sentence_lengths(1500)
    sampler = TokenBudgetBatchSampler(lengths, 400, seed=11)

    def longest_per_batch(epoch: int) -> list[int]:
        return [int(lengths[b].max()) for b in batches_of(sampler, epoch)]

    e0, e1 = longest_per_batch(0), longest_per_batch(1)
    assert sorted(e0) == sorted(e1)  # same length buckets ...
    assert e0 != sorted(e0)  # ... not served short-to-long ...
    assert e0 != e1  # ... and served in a different order each epoch


def test_different_seeds_give_different_batches() -> None:
    lengths = sentence_lengths(1500)
    a = batches_of(TokenBudgetBatchSampler(lengths, 400, seed=1))
    b = batches_of(TokenBudgetBatchSampler(lengths, 400, seed=2))
    assert a != b


def test_unshuffled_is_deterministic_sorted_and_epoch_independent() -> None:
    lengths = sentence_lengths(1000)
    sampler = TokenBudgetBatchSampler(lengths, 300, shuffle=False, seed=5)
    e0, e3 = batches_of(sampler, 0), batches_of(sampler, 3)
    assert e0 == e3
    assert e0 == batches_of(TokenBudgetBatchSampler(lengths, 300, shuffle=False, seed=99))
    flat = [i for b in e0 for i in b]
    assert flat == np.argsort(lengths, kind="stable").tolist()


def test_shuffled_batches_have_same_length_profile_as_unshuffled() -> None:
    # Shuffling only reorders batches and swaps equal-length examples: the multiset of
    # per-batch length profiles is the same as in the sorted, unshuffled epoch.
    lengths = sentence_lengths(1000)

    def profile(batches: list[list[int]]) -> Counter:
        return Counter(tuple(sorted(lengths[b].tolist())) for b in batches)

    fixed = batches_of(TokenBudgetBatchSampler(lengths, 300, shuffle=False))
    shuffled = batches_of(TokenBudgetBatchSampler(lengths, 300, seed=8), epoch=2)
    assert profile(fixed) == profile(shuffled)


# ---------------------------------------------------------------------------------- replicas
@pytest.mark.parametrize("num_replicas", [2, 3, 4])
@pytest.mark.parametrize("n", [997, 1000])
def test_replicas_get_equal_counts_and_together_cover_all(num_replicas: int, n: int) -> None:
    lengths = sentence_lengths(n, seed=n)
    full = TokenBudgetBatchSampler(lengths, 333, seed=4, num_replicas=1, rank=0)
    full.set_epoch(2)
    n_batches = len(full)
    shards = []
    for rank in range(num_replicas):
        s = TokenBudgetBatchSampler(lengths, 333, seed=4, num_replicas=num_replicas, rank=rank)
        shards.append(batches_of(s, epoch=2))
        assert len(s) == len(shards[-1])
    counts = {len(shard) for shard in shards}
    assert len(counts) == 1
    per_rank = counts.pop()
    assert per_rank == -(-n_batches // num_replicas)

    seen = Counter(i for shard in shards for b in shard for i in b)
    assert set(seen) == set(range(n))  # union covers every example
    # Disjoint, except for the batches repeated to pad the list to a multiple of num_replicas.
    padding = per_rank * num_replicas - n_batches
    repeated = sum(c - 1 for c in seen.values())
    assert (repeated == 0) == (padding == 0)
    all_batches = [tuple(b) for shard in shards for b in shard]
    assert len(all_batches) - len(set(all_batches)) == padding


def test_replicas_with_drop_last_drop_the_tail_evenly() -> None:
    lengths = sentence_lengths(1000, seed=3)
    full = TokenBudgetBatchSampler(lengths, 333, seed=4, num_replicas=1, rank=0)
    n_batches = len(full)
    assert n_batches % 3  # the test needs a remainder to drop
    shards = [
        batches_of(
            TokenBudgetBatchSampler(lengths, 333, seed=4, num_replicas=3, rank=r, drop_last=True)
        )
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [n_batches // 3] * 3
    flat = [i for s in shards for b in s for i in b]
    assert len(flat) == len(set(flat))  # nothing repeated


def test_more_replicas_than_batches_still_gives_every_rank_a_batch() -> None:
    lengths = [3, 3, 3]
    shards = [
        batches_of(TokenBudgetBatchSampler(lengths, 100, num_replicas=4, rank=r)) for r in range(4)
    ]
    assert [len(s) for s in shards] == [1, 1, 1, 1]


def test_replicas_default_to_single_process_without_distributed() -> None:
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    sampler = TokenBudgetBatchSampler([5, 6, 7], 100)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)


@pytest.mark.parametrize("num_replicas, rank", [(2, 2), (2, -1), (0, 0)])
def test_invalid_rank_is_rejected(num_replicas: int, rank: int) -> None:
    with pytest.raises(ValueError):
        TokenBudgetBatchSampler([5], 10, num_replicas=num_replicas, rank=rank)


# ------------------------------------------------------------------------------------ errors
def test_example_longer_than_max_tokens_raises_with_index_and_length() -> None:
    lengths = [5, 7, 120, 9]
    with pytest.raises(ValueError, match="max_tokens") as info:
        TokenBudgetBatchSampler(lengths, 100)
    message = str(info.value)
    assert "example 2" in message
    assert "120" in message
    assert "100" in message


def test_example_exactly_at_budget_is_accepted_alone() -> None:
    sampler = TokenBudgetBatchSampler([50, 100, 50], 100, shuffle=False)
    assert batches_of(sampler) == [[0, 2], [1]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lengths": [[1, 2]], "max_tokens": 10},
        {"lengths": [1, -2], "max_tokens": 10},
        {"lengths": [1.5], "max_tokens": 10},
        {"lengths": [1], "max_tokens": 0},
        {"lengths": [1], "max_tokens": 10, "max_sentences": 0},
        {"lengths": [1], "max_tokens": 10, "bucket_noise": -1.0},
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TokenBudgetBatchSampler(**kwargs)


def test_empty_dataset_gives_no_batches() -> None:
    sampler = TokenBudgetBatchSampler([], 100, num_replicas=2, rank=1)
    assert len(sampler) == 0
    assert list(sampler) == []
    assert sampler.padding_fraction() == 0.0


# ----------------------------------------------------------------------------------- padding
def test_padding_fraction_far_lower_than_fixed_size_random_batches() -> None:
    lengths = sentence_lengths(20_000, seed=42)
    sampler = TokenBudgetBatchSampler(lengths, 1024, seed=0)
    token_budget = sampler.padding_fraction()

    # Fixed-size random batches with the same mean number of sentences per batch.
    batch_size = round(len(lengths) / len(sampler))
    perm = np.random.default_rng(0).permutation(len(lengths))
    chunks = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    real = sum(int(lengths[c].sum()) for c in chunks)
    padded = sum(len(c) * int(lengths[c].max()) for c in chunks)
    fixed = 1 - real / padded

    assert fixed > 0.3
    assert token_budget < 0.05
    assert token_budget < fixed / 5


def test_padding_fraction_matches_its_definition_over_all_ranks() -> None:
    lengths = sentence_lengths(999, seed=9)
    shards = []
    for rank in range(2):
        s = TokenBudgetBatchSampler(lengths, 250, seed=1, num_replicas=2, rank=rank)
        shards += batches_of(s, epoch=1)
        reported = s.padding_fraction()
    real = sum(int(lengths[b].sum()) for b in shards)
    padded = sum(padded_cost(b, lengths) for b in shards)
    assert reported == pytest.approx(1 - real / padded)


def test_padding_fraction_is_zero_for_equal_lengths() -> None:
    sampler = TokenBudgetBatchSampler(np.full(64, 8), 64)
    assert sampler.padding_fraction() == 0.0


# ------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("k", [0, 1, 7])
def test_resume_from_state_yields_exactly_the_remaining_batches(k: int) -> None:
    lengths = sentence_lengths(2000, seed=5)
    reference = TokenBudgetBatchSampler(lengths, 300, seed=6)
    uninterrupted = batches_of(reference, epoch=3)

    interrupted = TokenBudgetBatchSampler(lengths, 300, seed=6)
    interrupted.set_epoch(3)
    it = iter(interrupted)
    seen = [next(it) for _ in range(k)]
    state = interrupted.state_dict()
    assert state["epoch"] == 3
    assert state["batches_yielded"] == k

    resumed = TokenBudgetBatchSampler(lengths, 300, seed=6)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # Lightning sets the (same) epoch again on restart
    rest = [list(b) for b in resumed]
    assert seen + rest == uninterrupted
    assert resumed.state_dict()["batches_yielded"] == len(uninterrupted)
    # The skip applied once: the next epoch is complete again.
    assert batches_of(resumed, epoch=4) == batches_of(reference, epoch=4)


def test_resume_state_counts_per_rank_batches() -> None:
    lengths = sentence_lengths(1000, seed=2)
    full = [
        batches_of(TokenBudgetBatchSampler(lengths, 300, num_replicas=2, rank=r), epoch=1)
        for r in range(2)
    ]
    for rank in range(2):
        s = TokenBudgetBatchSampler(lengths, 300, num_replicas=2, rank=rank)
        s.load_state_dict({"epoch": 1, "batches_yielded": 3})
        assert [list(b) for b in s] == full[rank][3:]


def test_set_start_batch_skips_then_resets_for_the_next_iteration() -> None:
    lengths = sentence_lengths(500)
    sampler = TokenBudgetBatchSampler(lengths, 200, seed=0)
    whole = batches_of(sampler, epoch=0)
    sampler.set_start_batch(4)
    assert batches_of(sampler) == whole[4:]
    assert batches_of(sampler) == whole


def test_moving_to_another_epoch_discards_a_pending_skip() -> None:
    lengths = sentence_lengths(500)
    sampler = TokenBudgetBatchSampler(lengths, 200, seed=0)
    sampler.load_state_dict({"epoch": 2, "batches_yielded": 5})
    sampler.set_epoch(3)
    assert len(batches_of(sampler)) == len(sampler)


def test_resume_with_fewer_replicas_skips_no_untrained_batch() -> None:
    lengths = sentence_lengths(1000, seed=2)
    four = [TokenBudgetBatchSampler(lengths, 300, num_replicas=4, rank=r) for r in range(4)]
    trained = {tuple(b) for s in four for b in list(s)[:3]}
    state = four[0].state_dict() | {"batches_yielded": 3}

    two = [TokenBudgetBatchSampler(lengths, 300, num_replicas=2, rank=r) for r in range(2)]
    for s in two:
        s.load_state_dict(state)
    remaining = [[tuple(b) for b in s] for s in two]
    all_batches = {tuple(b) for b in TokenBudgetBatchSampler(lengths, 300, num_replicas=1, rank=0)}
    assert trained | {b for rank in remaining for b in rank} == all_batches
    # 3 batches x 4 ranks = 12 trained = 6 per rank on 2 ranks: exactly those are skipped.
    uninterrupted = [
        [tuple(b) for b in TokenBudgetBatchSampler(lengths, 300, num_replicas=2, rank=r)]
        for r in range(2)
    ]
    assert remaining == [rank[6:] for rank in uninterrupted]


def test_lightning_advances_the_epoch_so_batches_are_reshuffled():
    # Lightning calls set_epoch only on `dataloader.sampler` / `dataloader.batch_sampler.sampler`;
    # this is the function its fit loop runs before every training epoch.
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    lengths = np.random.default_rng(0).integers(5, 40, size=500)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=256, seed=3)
    loader = DataLoader(range(500), batch_sampler=sampler)
    _set_sampler_epoch(loader, 0)
    first = list(loader)
    _set_sampler_epoch(loader, 1)
    second = list(loader)
    assert sampler.epoch == 1
    assert [b.tolist() for b in first] != [b.tolist() for b in second]


@pytest.mark.parametrize("shuffle", [False, True])
def test_tie_break_groups_examples_that_pad_alike_on_both_sides(shuffle: bool) -> None:
    """Sorting by the longer side alone mixes (source, target) = (20, 12) with (12, 20); the
    target-minus-source tie-break keeps such pairs apart, so each side pads less."""
    rng = np.random.default_rng(0)
    src = rng.integers(5, 30, size=3000)
    tgt = np.clip(src + rng.integers(-6, 7, size=3000), 5, 30)
    longer = np.maximum(src, tgt) + 1

    def side_padding(sampler: TokenBudgetBatchSampler) -> float:
        padded = real = 0
        for batch in sampler:
            for side in (src[batch], tgt[batch]):
                padded += len(batch) * int(side.max())
                real += int(side.sum())
        return 1 - real / padded

    plain = TokenBudgetBatchSampler(longer, 600, shuffle=shuffle, seed=3)
    paired = TokenBudgetBatchSampler(longer, 600, shuffle=shuffle, seed=3, tie_break=tgt - src)
    assert sorted(i for b in paired for i in b) == list(range(3000))
    assert all(len(b) * longer[b].max() <= 600 for b in paired)
    assert side_padding(paired) < 0.8 * side_padding(plain)


def test_tie_break_of_the_wrong_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="tie_break must have one entry per example"):
        TokenBudgetBatchSampler([3, 4, 5], 10, tie_break=[1, 2])
