"""Tests for greedy and beam search (attnlab.decoding) on a tiny seeded GRU seq2seq model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.decoding import (
    Hypothesis,
    _best_extensions,
    _row_topk,
    _topk_lowest_index_first,
    beam_search,
    generate,
    greedy_search,
)
from attnlab.native import use_native_kernels

PAD, BOS, EOS = 0, 1, 2


@pytest.fixture(autouse=True, params=["native", "pytorch"])
def _kernels(request):
    """Every property here holds on both paths: with the native decoding kernels (where they
    apply: fp32 and bf16 logits) and with PyTorch's ops alone."""
    use_native_kernels(request.param == "native")
    yield
    use_native_kernels(True)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The tensors here are tiny: intra-op threads only add overhead (and stall on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyGRUSeq2Seq(nn.Module):
    """Randomly initialised encoder (embeddings) + GRU-cell decoder with dot-product attention.

    The decoder state is the hidden vector [B, H]; ``eos_bias`` shifts how soon eos wins,
    ``sharpness`` scales the logits, and ``quantum`` > 0 rounds them to a grid to force exact ties.
    """

    def __init__(
        self,
        vocab: int = 12,
        hidden: int = 16,
        seed: int = 0,
        eos_id: int = EOS,
        eos_bias: float = 0.0,
        sharpness: float = 3.0,
        logits_dtype: torch.dtype | None = None,
        quantum: float = 0.0,
        gain: float = 3.0,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.src_emb = nn.Embedding(vocab, hidden)
        self.tgt_emb = nn.Embedding(vocab, hidden)
        self.init = nn.Linear(hidden, hidden)
        self.cell = nn.GRUCell(2 * hidden, hidden)
        self.out = nn.Linear(2 * hidden, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(gain * torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))
            self.out.bias[eos_id] += eos_bias
        self.sharpness = sharpness
        self.quantum = quantum
        self.logits_dtype = logits_dtype
        self.encode_calls = 0
        self.eval()

    # --- incremental interface
    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        self.encode_calls += 1
        return {"memory": torch.tanh(self.src_emb(src)), "pad": src_pad_mask}

    def init_decoder_state(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        keep = (~enc["pad"]).unsqueeze(-1).float()
        mean = (enc["memory"] * keep).sum(1) / keep.sum(1)
        return torch.tanh(self.init(mean))

    def decode_step(
        self, prev_tokens: torch.Tensor, enc: dict[str, torch.Tensor], state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        memory, pad = enc["memory"], enc["pad"]
        assert prev_tokens.shape[0] == state.shape[0] == memory.shape[0]
        attn = (memory @ state.unsqueeze(-1)).squeeze(-1).masked_fill(pad, -math.inf)
        ctx = (attn.softmax(-1).unsqueeze(1) @ memory).squeeze(1)
        state = self.cell(torch.cat([self.tgt_emb(prev_tokens), ctx], -1), state)
        logits = self.sharpness * self.out(torch.cat([state, ctx], -1))
        if self.quantum > 0:
            logits = torch.round(logits / self.quantum) * self.quantum
        return (logits if self.logits_dtype is None else logits.to(self.logits_dtype)), state

    def reorder_encoder_out(self, enc: dict[str, torch.Tensor], index: torch.Tensor) -> dict:
        return {key: value.index_select(0, index) for key, value in enc.items()}

    def reorder_decoder_state(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)

    # --- non-incremental reference: rebuild everything from scratch for the whole prefix
    def forward(
        self, src: torch.Tensor, src_pad_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        enc = self.encode(src, src_pad_mask)
        state = self.init_decoder_state(enc)
        steps = []
        for t in range(tgt_in.shape[1]):
            logits, state = self.decode_step(tgt_in[:, t], enc, state)
            steps.append(logits)
        return torch.stack(steps, 1)


# ----------------------------------------------------------------------------------- helpers
def make_batch(
    lengths: list[int], vocab: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded sources; pad positions hold random real tokens, so only the mask can hide them."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (len(lengths), max(lengths)), generator=gen)
    pad_mask = torch.arange(max(lengths))[None, :] >= torch.tensor(lengths)[:, None]
    return src, pad_mask


def single(src: torch.Tensor, pad_mask: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = int((~pad_mask[i]).sum())
    return src[i : i + 1, :n], pad_mask[i : i + 1, :n]


@torch.no_grad()
def sequence_log_probs(
    model: TinyGRUSeq2Seq, src: torch.Tensor, mask: torch.Tensor, seqs: list[list[int]]
) -> list[float]:
    """Teacher-forced sum of log-probs of each ``seq`` + eos, for one source sentence.

    All sequences go in one batch, padded at the end; the decoder is causal so padding after a
    sequence's eos does not change its log-probs.
    """
    width = max(len(q) for q in seqs) + 1
    tgt = torch.tensor([[*q, EOS] + [EOS] * (width - len(q) - 1) for q in seqs])
    tgt_in = torch.cat([torch.full((len(seqs), 1), BOS), tgt[:, :-1]], 1)
    n = len(seqs)
    lprobs = F.log_softmax(model(src.expand(n, -1), mask.expand(n, -1), tgt_in).float(), -1)
    picked = lprobs.gather(-1, tgt[:, :, None]).squeeze(-1).double()
    keep = torch.arange(width)[None, :] <= torch.tensor([len(q) for q in seqs])[:, None]
    return (picked * keep).sum(1).tolist()


@torch.no_grad()
def naive_greedy(
    model: TinyGRUSeq2Seq,
    src: torch.Tensor,
    mask: torch.Tensor,
    max_len: int,
    min_len: int = 0,
    no_repeat_ngram_size: int = 0,
) -> list[int]:
    """Unbatched, uncached greedy decoding of one sentence, re-running the prefix every step."""
    toks: list[int] = []
    while True:
        logits = model(src, mask, torch.tensor([[BOS, *toks]]))[0, -1]
        lprobs = F.log_softmax(logits.float(), -1)
        if len(toks) < min_len:
            lprobs[EOS] = -math.inf
        n = no_repeat_ngram_size
        if n > 0 and len(toks) >= n:
            prefix = tuple(toks[len(toks) - n + 1 :])
            for i in range(len(toks) - n + 1):
                if tuple(toks[i : i + n - 1]) == prefix:
                    lprobs[toks[i + n - 1]] = -math.inf
        if len(toks) >= max_len:
            return toks
        tok = int(lprobs.argmax())
        if tok == EOS:
            return toks
        toks.append(tok)


def gnmt(log_prob: float, length: int, alpha: float) -> float:
    return log_prob / ((5 + length) / 6) ** alpha


def has_repeated_ngram(toks: list[int], n: int) -> bool:
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return len(grams) != len(set(grams))


LENGTHS = [7, 3, 9, 1, 5, 4]


def check_log_probs(model, src, mask, out: list[list[Hypothesis]], alpha: float | None) -> None:
    """Each hypothesis carries the teacher-forced log-prob of its own tokens (and its score)."""
    for i, hyps in enumerate(out):
        s, m = single(src, mask, i)
        ref = sequence_log_probs(model, s, m, [h.tokens for h in hyps])
        assert [h.log_prob for h in hyps] == pytest.approx(ref, abs=1e-4)
        if alpha is not None:
            for h in hyps:
                assert h.score == pytest.approx(gnmt(h.log_prob, len(h.tokens) + 1, alpha))


# -------------------------------------------------------------------------- greedy / beam 1
@pytest.mark.parametrize("seed", [0, 1, 3, 4])
@pytest.mark.parametrize("min_len", [0, 2])
def test_beam_size_one_equals_greedy(seed: int, min_len: int) -> None:
    model = TinyGRUSeq2Seq(seed=seed, eos_bias=1.0)
    src, mask = make_batch(LENGTHS, seed=seed)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=3, min_len=min_len)
    greedy = greedy_search(model, src, mask, **kw)
    # The test is only meaningful if both stopping reasons occur: eos and max length.
    max_lens = [int(1.0 * n + 3) for n in LENGTHS]
    lengths = [len(g.tokens) for g in greedy]
    assert any(n < m for n, m in zip(lengths, max_lens, strict=True))
    assert any(n == m for n, m in zip(lengths, max_lens, strict=True))
    for alpha in [0.0, 0.6, 2.0]:
        beam = beam_search(model, src, mask, beam_size=1, length_penalty=alpha, **kw)
        assert [len(b) for b in beam] == [1] * len(LENGTHS)
        assert [b[0].tokens for b in beam] == [g.tokens for g in greedy]
        for b, g in zip(beam, greedy, strict=True):
            assert b[0].log_prob == g.log_prob  # same float64 sums of the same float32 terms
            assert b[0].score == pytest.approx(gnmt(g.log_prob, len(g.tokens) + 1, alpha))


@pytest.mark.parametrize("seed", range(3))
def test_greedy_matches_naive_reference(seed: int) -> None:
    model = TinyGRUSeq2Seq(seed=seed, eos_bias=0.5)
    src, mask = make_batch(LENGTHS, seed=seed)
    hyps = greedy_search(model, src, mask, bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=3)
    for i, hyp in enumerate(hyps):
        s, m = single(src, mask, i)
        assert hyp.tokens == naive_greedy(model, s, m, max_len=int(1.0 * LENGTHS[i] + 3))
        assert hyp.score == hyp.log_prob
    check_log_probs(model, src, mask, [[h] for h in hyps], alpha=None)


@pytest.mark.parametrize(
    "model_kw",
    [dict(logits_dtype=torch.bfloat16), dict(quantum=1.0), dict(logits_dtype=torch.float64)],
    ids=["bf16", "integer-logits", "fp64"],
)
def test_ties_and_logit_dtypes(model_kw: dict) -> None:
    """Exact ties (bf16, rounded logits) are broken towards the lowest id by both searches."""
    model = TinyGRUSeq2Seq(seed=7, eos_bias=0.5, sharpness=1.0, **model_kw)
    src, mask = make_batch(LENGTHS, seed=7)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=3)
    greedy = greedy_search(model, src, mask, **kw)
    beam = beam_search(model, src, mask, beam_size=1, **kw)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    for i, hyp in enumerate(greedy):
        s, m = single(src, mask, i)
        assert hyp.tokens == naive_greedy(model, s, m, max_len=int(1.0 * LENGTHS[i] + 3))
    check_log_probs(model, src, mask, [[h] for h in greedy], alpha=None)


# --------------------------------------------------------------------------------------- beam
def _tied_inputs() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    few_levels = torch.randint(3, (8, 40), generator=gen).double()  # ties straddle every cut
    few_levels[0, 5:] = -math.inf  # fewer finite entries than k, as when beams are dead
    # Distinct values except that each row's 4 best tie: no tie straddles a cut at k >= 4, but
    # topk returns the tied winners in arbitrary order.
    top_tied = torch.stack([torch.randperm(1000, generator=gen) for _ in range(8)]).double()
    top_tied[top_tied >= 996] = 1000.0
    # Distinct values but for a run of three tied at ranks 2-4: it straddles the cut at k = 4
    # and fits among the top 2k + 1 candidates (the path that does not scan the whole row).
    short_tie = torch.stack([torch.randperm(1000, generator=gen) for _ in range(8)]).double()
    short_tie[(short_tie >= 995) & (short_tie <= 997)] = 996.0
    # Rows of whole 32-wide blocks (1000 above leaves a partial one): the top-k by blocks.
    block_tie = torch.stack([torch.randperm(1024, generator=gen) for _ in range(8)]).double()
    block_tie[(block_tie >= 1018) & (block_tie <= 1021)] = 1019.0
    return [few_levels, top_tied, short_tie, block_tie]


@pytest.mark.parametrize(
    "x", _tied_inputs(), ids=["few-levels", "tied-winners", "short-tie", "block-tie"]
)
@pytest.mark.parametrize("k", [1, 4, 8])
@pytest.mark.parametrize("spare", [None, 1])
def test_topk_breaks_ties_by_lowest_index(x: torch.Tensor, k: int, spare: int | None) -> None:
    """Must agree with a stable descending sort, whether or not ties straddle the cut, with
    the default spare candidates or the one that fp32 logits get."""
    values, idx = _topk_lowest_index_first(x, k, spare)
    ref_values, ref_idx = x.sort(dim=1, descending=True, stable=True)
    assert torch.equal(idx, ref_idx[:, :k])
    assert torch.equal(values, ref_values[:, :k])


@pytest.mark.parametrize("vocab", [8000, 8003])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_topk_by_blocks_finds_the_top_values(vocab: int, dtype: torch.dtype) -> None:
    """The blocked top-k returns torch.topk's values, and each index points at its value,
    whether or not the row ends in a partial block, with bf16's many ties."""
    gen = torch.Generator().manual_seed(vocab)
    x = (torch.randn(40, vocab, generator=gen) * 3).to(dtype)
    x[0, -3:] = 50.0  # the best in the partial block (or the last whole one)
    x[1] = 1.0  # a row of ties
    values, idx = _row_topk(x, 17)
    assert torch.equal(values, x.topk(17, dim=1).values)
    assert torch.equal(x.gather(1, idx), values)
    assert bool((idx.sort(dim=1).values.diff(dim=1) > 0).all())  # 17 distinct positions


@pytest.mark.parametrize("levels", [3, 1000])
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("spare", [None, 1])
def test_best_extensions_equal_one_ranking_of_every_beam_and_token(
    levels: int, k: int, spare: int | None
) -> None:
    """Ranking each beam's best 2K first must give what ranking all K x V extensions gives,
    ties (few levels) and dead beams (-inf scores) included."""
    gen = torch.Generator().manual_seed(levels + k)
    n, vocab = 6, 30
    lprobs = -torch.randint(levels, (n * k, vocab), generator=gen).float()
    scores = -torch.randint(levels, (n, k), generator=gen).double()
    scores[0, 1:] = -math.inf  # the first step: one live beam
    lprobs[1, 3:] = -math.inf  # a beam with few allowed tokens
    got = _best_extensions(scores, lprobs, 2 * k, spare)

    flat = (scores[:, :, None] + lprobs.view(n, k, vocab).double()).view(n, k * vocab)
    ref_values, ref_idx = flat.sort(dim=1, descending=True, stable=True)
    assert torch.equal(got[0], ref_values[:, : 2 * k])
    assert torch.equal(got[1], ref_idx[:, : 2 * k] // vocab)
    assert torch.equal(got[2], ref_idx[:, : 2 * k] % vocab)


@pytest.mark.parametrize("seed", range(3))
def test_beam_is_batch_independent_and_consistent(seed: int) -> None:
    model = TinyGRUSeq2Seq(seed=seed, eos_bias=0.5)
    src, mask = make_batch(LENGTHS, seed=seed)
    kw = dict(bos_id=BOS, eos_id=EOS, beam_size=4, nbest=4, max_len_a=1.0, max_len_b=3)
    batched = beam_search(model, src, mask, **kw)
    for i, hyps in enumerate(batched):
        alone = beam_search(model, *single(src, mask, i), **kw)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        # fp32 scores, relative: a batch of one and a batch of five take different BLAS kernels
        # (AVX2 Zen 3: 1.2e-5 apart on a score of -8.84, 12 ulp).
        expected = [h.score for h in alone]
        assert [h.score for h in hyps] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # Returned log-probs belong to the returned tokens: beam parents were followed correctly.
    check_log_probs(model, src, mask, batched, alpha=0.6)


@pytest.mark.parametrize("seed", range(3))
def test_large_beam_is_exhaustive(seed: int) -> None:
    """V=4 (eos included), max length 3: a beam of V**3 must enumerate all 1+3+9+27 sequences,
    so its best hypothesis is the brute-force optimum of the normalised score."""
    vocab, max_len = 4, 3
    model = TinyGRUSeq2Seq(vocab=vocab, seed=seed, sharpness=1.0, eos_bias=-3.0)
    src, mask = make_batch([3], vocab=vocab, seed=seed)
    others = [t for t in range(vocab) if t != EOS]
    space = [list(p) for n in range(max_len + 1) for p in itertools.product(others, repeat=n)]
    brute = dict(zip(map(tuple, space), sequence_log_probs(model, src, mask, space), strict=True))

    for alpha in [0.0, 0.6, 1.0, 3.0]:
        kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=0.0, max_len_b=max_len, length_penalty=alpha)
        hyps = beam_search(model, src, mask, beam_size=vocab**3, nbest=vocab**3, **kw)[0]
        best = max(brute, key=lambda p, a=alpha: gnmt(brute[p], len(p) + 1, a))
        assert len(hyps) == len(space) == 40
        assert {tuple(h.tokens) for h in hyps} == set(brute)
        assert hyps[0].tokens == list(best)
        assert hyps[0].score == pytest.approx(gnmt(brute[best], len(best) + 1, alpha), abs=1e-5)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert h.log_prob == pytest.approx(brute[tuple(h.tokens)], abs=1e-5)
        if alpha == 0.0:
            assert hyps[0].score == pytest.approx(max(brute.values()), abs=1e-5)
    # The optimum under length penalty must differ from the plain one for at least one alpha,
    # otherwise the normalisation is not being exercised (checked across alphas above).
    plain = max(brute, key=brute.__getitem__)
    assert any(
        max(brute, key=lambda p, a=a: gnmt(brute[p], len(p) + 1, a)) != plain for a in [1.0, 3.0]
    )


# ------------------------------------------------------------------------------- constraints
def test_min_len_forbids_early_eos() -> None:
    model = TinyGRUSeq2Seq(seed=1, eos_bias=3.0)  # eos is likely from the start
    src, mask = make_batch(LENGTHS, seed=1)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=6)
    free = greedy_search(model, src, mask, **kw)
    assert any(len(h.tokens) < 4 for h in free)  # the constraint has something to do
    for hyp in greedy_search(model, src, mask, min_len=4, **kw):
        assert len(hyp.tokens) >= 4
    out = beam_search(model, src, mask, min_len=4, beam_size=3, nbest=3, **kw)
    for hyps in out:
        assert all(len(h.tokens) >= 4 for h in hyps)
    check_log_probs(model, src, mask, out, alpha=0.6)  # eos is banned, not renormalised away


@pytest.mark.parametrize("a,b", [(1.0, 0), (0.5, 1), (1.5, 2), (0.0, 0)])
def test_max_len_respected_per_sentence(a: float, b: int) -> None:
    model = TinyGRUSeq2Seq(seed=2, eos_bias=-20.0)  # eos essentially never chosen freely
    src, mask = make_batch(LENGTHS, seed=2)
    max_lens = [int(a * n + b) for n in LENGTHS]
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=a, max_len_b=b)
    assert [len(h.tokens) for h in greedy_search(model, src, mask, **kw)] == max_lens
    beam = beam_search(model, src, mask, beam_size=3, nbest=3, **kw)
    for hyps, m in zip(beam, max_lens, strict=True):
        assert len(hyps) == (1 if m == 0 else 3)
        assert all(len(h.tokens) == m for h in hyps)
    check_log_probs(model, src, mask, beam, alpha=0.6)  # forced eos keeps its model log-prob


def test_max_len_wins_over_min_len() -> None:
    model = TinyGRUSeq2Seq(seed=3)
    src, mask = make_batch(LENGTHS, seed=3)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=0.0, max_len_b=2, min_len=5)
    assert all(len(h.tokens) == 2 for h in greedy_search(model, src, mask, **kw))
    assert all(len(h[0].tokens) == 2 for h in beam_search(model, src, mask, **kw))


@pytest.mark.parametrize("seed", range(2))
def test_no_repeat_ngram(seed: int) -> None:
    model = TinyGRUSeq2Seq(vocab=6, seed=seed, eos_bias=-20.0)
    src, mask = make_batch(LENGTHS, vocab=6, seed=seed)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=0.0, max_len_b=12, beam_size=3, nbest=3)
    free = beam_search(model, src, mask, **kw)
    assert any(has_repeated_ngram(h.tokens, 2) for hyps in free for h in hyps)
    blocked = beam_search(model, src, mask, no_repeat_ngram_size=2, **kw)
    assert all(len(hyps) == 3 for hyps in blocked)
    assert not any(has_repeated_ngram(h.tokens, 2) for hyps in blocked for h in hyps)
    check_log_probs(model, src, mask, blocked, alpha=0.6)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_beam_one_matches_naive(n: int) -> None:
    model = TinyGRUSeq2Seq(vocab=8, seed=4, eos_bias=-3.0)
    src, mask = make_batch(LENGTHS, vocab=8, seed=4)
    kw = dict(bos_id=BOS, eos_id=EOS, beam_size=1, max_len_a=0.0, max_len_b=6)
    out = beam_search(model, src, mask, no_repeat_ngram_size=n, **kw)
    assert out != beam_search(model, src, mask, **kw)  # blocking changed something
    for i, hyps in enumerate(out):
        s, m = single(src, mask, i)
        assert hyps[0].tokens == naive_greedy(model, s, m, max_len=6, no_repeat_ngram_size=n)


@pytest.mark.parametrize("nbest", [1, 2, 4])
def test_nbest_sorted_and_sized(nbest: int) -> None:
    model = TinyGRUSeq2Seq(seed=5, eos_bias=0.5)
    src, mask = make_batch(LENGTHS, seed=5)
    out = beam_search(model, src, mask, bos_id=BOS, eos_id=EOS, beam_size=4, nbest=nbest)
    assert len(out) == len(LENGTHS)
    for hyps in out:
        assert len(hyps) == nbest
        assert all(isinstance(h, Hypothesis) for h in hyps)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == nbest


# ------------------------------------------------------------------------------ interface use
def test_encode_once_and_generate_dispatch() -> None:
    model = TinyGRUSeq2Seq(seed=6, eos_bias=0.5)
    src, mask = make_batch(LENGTHS, seed=6)
    greedy = generate(model, src, mask, strategy="greedy", bos_id=BOS, eos_id=EOS)
    assert model.encode_calls == 1
    beam = generate(model, src, mask, strategy="beam", bos_id=BOS, eos_id=EOS, beam_size=1)
    assert model.encode_calls == 2
    assert [g[0].tokens for g in greedy] == [b[0].tokens for b in beam]
    with pytest.raises(ValueError):
        generate(model, src, mask, strategy="sampling", bos_id=BOS, eos_id=EOS)
    with pytest.raises(ValueError):
        beam_search(model, src, mask, bos_id=BOS, eos_id=EOS, beam_size=2, nbest=3)


class NaNAfterTwoSteps(TinyGRUSeq2Seq):
    """Sentence 1's logits turn NaN at the third step (a model whose weights diverged)."""

    def decode_step(self, prev_tokens, enc, state):
        logits, state = super().decode_step(prev_tokens, enc, state)
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3:
            logits = logits.clone()
            logits[0] = math.nan
        return logits, state


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_logits_stop_decoding_with_an_error_that_says_so(strategy, dtype) -> None:
    model = NaNAfterTwoSteps(seed=1, logits_dtype=dtype)
    src, mask = make_batch(LENGTHS, seed=1)
    kw = dict(bos_id=BOS, eos_id=EOS, max_len_a=1.0, max_len_b=5, min_len=4)
    search = greedy_search if strategy == "greedy" else beam_search
    with pytest.raises(ValueError, match=r"decoding step 2: .*NaN in \d+ of \d+ rows|NaN in \d+"):
        search(model, src, mask, **kw)
