"""The native decoding kernels (attnlab/native) compute what the PyTorch path computes, and a
missing compiler only costs speed."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import native
from attnlab.decoding import (
    _next_log_probs,
    _topk_lowest_index_first,
    beam_search,
    greedy_search,
)
from attnlab.models.kv_cache import GrowingKVCache
from tests.test_transformer import tiny

pytestmark = pytest.mark.skipif(
    not native.available(), reason="no C compiler: the native kernels could not be built"
)
DTYPES = [torch.float32, torch.bfloat16]


def reference_topk(logits, k, *, eos, ban_eos=False, force_eos=None):
    step, min_len = (0, 1) if ban_eos else (1, 0)
    lprobs = _next_log_probs(logits, step, eos_id=eos, min_len=min_len, force_eos=force_eos)
    return _topk_lowest_index_first(lprobs, k)


def logits_with_ties(rows: int, vocab: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=gen) * 3
    x[:, 5::7] = x[:, 5:6]  # exact ties, some of them among the best
    x[0, :] = 1.25  # a row of one value: ties everywhere
    x[1, 3] = float("-inf")
    return x.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vocab", [37, 8003])
@pytest.mark.parametrize("k", [1, 5, 8])
def test_log_softmax_topk_ranks_as_the_pytorch_path(dtype, vocab, k) -> None:
    x = logits_with_ties(12, vocab, dtype, seed=vocab + k)
    force = torch.zeros(12, dtype=torch.bool)
    force[[2, 7]] = True
    for kw in ({}, {"ban_eos": True}, {"force_eos": force}, {"ban_eos": True, "force_eos": force}):
        value, index = native.log_softmax_topk(x, k, eos=4, **kw)
        ref_value, ref_index = reference_topk(x, k, eos=4, **kw)
        assert torch.equal(index, ref_index), kw
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, ref_value, rtol=0, atol=2e-5)


def test_log_softmax_topk_takes_strided_rows_and_answers_none_where_it_cannot() -> None:
    wide = torch.randn(6, 100)
    value, index = native.log_softmax_topk(wide[:, :90], 3, eos=0)
    ref_value, ref_index = reference_topk(wide[:, :90].contiguous(), 3, eos=0)
    assert torch.equal(index, ref_index)
    torch.testing.assert_close(value, ref_value, rtol=0, atol=2e-5)
    assert native.log_softmax_topk(wide.double(), 3, eos=0) is None  # fp64: PyTorch's path
    assert native.log_softmax_topk(wide[:, ::2], 3, eos=0) is None  # strided tokens
    assert native.log_softmax_topk(wide, 65, eos=0) is None  # k beyond the kernel's 64
    native.use_native_kernels(False)
    try:
        assert native.log_softmax_topk(wide, 3, eos=0) is None
    finally:
        native.use_native_kernels(True)


def beam_cache(dtype, sentences, beams, heads, d_k, d_v, steps, seed):
    """A BeamKVCache after ``steps`` steps with random beam parents."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    cache = GrowingKVCache.empty(rand(1), sentences, heads, d_k, d_v, capacity=4)
    cache = cache.append(rand(sentences, 1, heads, d_k), rand(sentences, 1, heads, d_v))
    cache = cache.expand_beams(beams)
    for _ in range(steps - 1):
        rows = sentences * beams
        cache = cache.append(rand(rows, 1, heads, d_k), rand(rows, 1, heads, d_v))
        parents = torch.randint(0, beams, (sentences, beams), generator=gen)
        cache = cache.index_select((torch.arange(sentences)[:, None] * beams + parents).view(-1))
    return cache, rand(sentences * beams, heads, 1, d_k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [1, 6, 13])
def test_beam_self_attention_matches_attending_to_each_rows_past(dtype, steps) -> None:
    cache, query = beam_cache(dtype, 3, 4, 2, 8, 5, steps, seed=steps)
    out = native.beam_self_attention(
        query, cache._buffers.key, cache._buffers.value, cache.ancestry
    )
    assert out is not None and out.dtype == dtype and out.shape == (12, 2, 1, 5)
    # Each row's own past, gathered, through plain attention in fp64.
    keys, values = cache.key.double(), cache.value.double()
    scores = query.double() @ keys.transpose(-2, -1) / math.sqrt(8)
    expected = scores.softmax(-1) @ values
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), expected, rtol=tolerance, atol=tolerance)
    native.use_native_kernels(False)
    try:  # and the PyTorch path of BeamKVCache.attend agrees
        torch.testing.assert_close(
            cache.attend(query).double(), expected, rtol=tolerance * 4, atol=tolerance * 4
        )
    finally:
        native.use_native_kernels(True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_masked_softmax_attention(dtype, masked) -> None:
    gen = torch.Generator().manual_seed(3)
    shapes = [(5, 3, 4, 8), (5, 3, 9, 8), (5, 3, 9, 6)]  # 4 queries, 9 keys, d_k 8, d_v 6
    q, k, v = (torch.randn(*shape, generator=gen).to(dtype) for shape in shapes)
    allowed = None
    if masked:
        lengths = torch.tensor([9, 1, 4, 7, 2])
        allowed = (torch.arange(9)[None, :] < lengths[:, None])[:, None, None, :]
    out = native.attention(q, k, v, allowed)
    assert out is not None and out.dtype == dtype and out.shape == (5, 3, 4, 6)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=allowed)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), expected, rtol=tolerance, atol=tolerance)


def test_kernels_stay_out_of_autograd() -> None:
    q = torch.randn(2, 1, 3, 4, requires_grad=True)
    k, v = torch.randn(2, 1, 5, 4), torch.randn(2, 1, 5, 4)
    logits = torch.randn(3, 20, requires_grad=True)
    cache, query = beam_cache(torch.float32, 2, 2, 1, 4, 4, 3, seed=0)
    query.requires_grad_(True)
    buffers = (cache._buffers.key, cache._buffers.value, cache.ancestry)
    assert native.attention(q, k, v) is None
    assert native.log_softmax_topk(logits, 2, eos=0) is None
    assert native.beam_self_attention(query, *buffers) is None
    assert cache.attend(query).requires_grad  # the PyTorch path, with its graph
    with torch.no_grad():
        assert native.attention(q, k, v) is not None
        assert native.log_softmax_topk(logits, 2, eos=0) is not None
        assert native.beam_self_attention(query, *buffers) is not None


def test_additive_scores_and_their_gradients_match_autograd() -> None:
    """Bahdanau's scores v^T tanh(k + q) and their backward, against fp64 autograd: keys from
    the tanh's linear part to its saturation, a padded position (zero gradient) skipped, and
    the keys' gradient added to what the sum already holds."""
    gen = torch.Generator().manual_seed(4)
    keys = torch.randn(3, 7, 10, generator=gen) * 4
    keys[0, 0] = torch.linspace(-0.2, 0.2, 10)  # |x| < 0.1: the series branch
    keys[0, 1] = torch.linspace(-20.0, 20.0, 10)  # saturated
    query, v = torch.randn(3, 10, generator=gen), torch.randn(1, 10, generator=gen)
    query[0] = 0.0
    grad_scores = torch.randn(3, 7, generator=gen)
    grad_scores[2, 5:] = 0.0  # padding after the masked softmax

    k64, q64, v64 = (x.double().requires_grad_() for x in (keys, query, v))
    expected = (torch.tanh(k64 + q64[:, None]) @ v64[0]).squeeze(-1)
    expected.backward(grad_scores.double())
    scores = native.additive_scores(keys, query, v)
    assert scores is not None and scores.shape == (3, 7) and scores.dtype == torch.float32
    torch.testing.assert_close(scores.double(), expected.detach(), rtol=1e-5, atol=1e-5)

    earlier = torch.randn(3, 7, 10, generator=gen)
    grad_keys = earlier.clone()
    grad_query, grad_v = native.additive_scores_grad(keys, query, v, grad_scores, grad_keys)
    torch.testing.assert_close(
        grad_keys.double(), earlier.double() + k64.grad, rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(grad_query.double(), q64.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_v.double(), v64.grad[0], rtol=1e-5, atol=1e-5)
    without_keys = native.additive_scores_grad(keys, query, v, grad_scores, None)
    torch.testing.assert_close(without_keys, (grad_query, grad_v))

    # tanh itself to a few ulp, relative, small arguments included (no cancellation near 0).
    x = torch.cat([torch.logspace(-6, 1.3, 400), -torch.logspace(-6, 1.3, 400)])
    tanh = native.additive_scores(x.view(1, -1, 1), torch.zeros(1, 1), torch.ones(1, 1))
    torch.testing.assert_close(tanh.view(-1).double(), torch.tanh(x.double()), rtol=1e-6, atol=0)

    assert native.additive_scores(keys.double(), query.double(), v.double()) is None
    assert native.additive_scores(keys, query[:2], v) is None
    with torch.enable_grad():
        assert native.additive_scores(keys, query.requires_grad_(), v) is None  # no graph


def test_log_probs_that_round_to_a_tie_go_to_the_lowest_index() -> None:
    """Different logits can round to one log-prob; ranked by log-prob, that is a tie."""
    x = torch.zeros(2, 8000)
    x[0, 7] = 2.0**-22  # its log-prob rounds to everyone else's
    x[1, [50, 100, 200]] = torch.tensor([1.0, 1.0 - 2.0**-23, 1.0 - 2.0**-22])
    value, index = native.log_softmax_topk(x, 3, eos=1)
    ref_value, ref_index = reference_topk(x, 3, eos=1)
    assert torch.equal(index, ref_index)
    assert index[0, 0] == 0 and index[1].tolist() == [50, 100, 200]
    torch.testing.assert_close(value, ref_value, rtol=0, atol=2e-5)


def test_bad_force_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="one flag per row"):
        native.log_softmax_topk(
            torch.randn(8, 20), 2, eos=0, force_eos=torch.ones(2, dtype=torch.bool)
        )


@pytest.mark.parametrize("bf16", [False, True])
def test_searches_find_the_same_hypotheses_with_and_without_the_kernels(bf16, monkeypatch) -> None:
    """fp32: every kernel on against all off. bf16: the ranking kernel alone, since the
    attention kernels keep the softmax weights in fp32 where PyTorch's path rounds them to bf16
    (they are checked against fp64 above), and with an untrained model's flat distributions
    that alone changes some beams."""
    calls = {}

    def counted(name):
        kernel = getattr(native, name)

        def call(*args, **kwargs):
            out = kernel(*args, **kwargs)
            calls[name] = calls.get(name, 0) + (out is not None)
            return out

        return call

    for name in ("log_softmax_topk", "beam_self_attention", "attention"):
        monkeypatch.setattr(native, name, counted(name))
    if bf16:
        monkeypatch.setattr(native, "beam_self_attention", lambda *args: None)
        monkeypatch.setattr(native, "attention", lambda *args: None)
    model = tiny()
    gen = torch.Generator().manual_seed(5)
    src = torch.randint(4, 40, (6, 9), generator=gen)
    pad = torch.arange(9)[None, :] >= torch.tensor([9, 3, 7, 9, 5, 1])[:, None]
    kw = dict(bos_id=2, eos_id=3, max_len_a=1.0, max_len_b=4)
    runs = {}
    for enabled in (True, False):
        native.use_native_kernels(enabled)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                beams = beam_search(model, src, pad, beam_size=4, nbest=4, **kw)
                greedy = greedy_search(model, src, pad, **kw)
        finally:
            native.use_native_kernels(True)
        runs[enabled] = (beams, greedy)
    expected_kernels = (
        {"log_softmax_topk"} if bf16 else {"log_softmax_topk", "beam_self_attention", "attention"}
    )
    assert {name for name, n in calls.items() if n > 0} == expected_kernels
    (beams, greedy), (ref_beams, ref_greedy) = runs[True], runs[False]
    assert [[h.tokens for h in b] for b in beams] == [[h.tokens for h in b] for b in ref_beams]
    assert [g.tokens for g in greedy] == [g.tokens for g in ref_greedy]
    for b, ref in zip(beams, ref_beams, strict=True):
        for h, r in zip(b, ref, strict=True):
            assert h.log_prob == pytest.approx(r.log_prob, abs=1e-4)


def test_build_failures_name_the_compiler(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATTNLAB_NATIVE_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="no-such-cc"):
        native.build("no-such-cc")
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc: error: out of luck' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(RuntimeError, match="out of luck"):
        native.build(str(broken))
    assert not list(tmp_path.glob("*.so"))  # nothing half-built left behind


def test_a_failed_build_falls_back_to_pytorch_with_a_warning(monkeypatch, caplog) -> None:
    def fail(compiler=None):
        raise RuntimeError("no C compiler 'cc' on PATH (set CC)")

    monkeypatch.setattr(native, "build", fail)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_tried", False)
    with caplog.at_level(logging.WARNING, logger="attnlab.native"):
        assert not native.available()
    assert "no C compiler" in caplog.text
    model = tiny()
    src = torch.randint(4, 40, (2, 5))
    pad = torch.zeros(2, 5, dtype=torch.bool)
    hyps = beam_search(model, src, pad, bos_id=2, eos_id=3, beam_size=3, max_len_b=3)
    assert len(hyps) == 2 and all(len(h) == 1 for h in hyps)


def test_the_build_is_cached_per_source_and_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATTNLAB_NATIVE_CACHE", str(tmp_path))
    first = native.build()
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt


@pytest.mark.parametrize(
    "rows, cols, row_stride",
    [(7552, 256, 256), (29, 45, 45), (8, 16, 16), (13, 5, 7), (1, 9, 9), (40, 1, 3), (64, 24, 40)],
)
def test_transpose_copies_every_element_and_sums_the_columns(rows, cols, row_stride) -> None:
    gen = torch.Generator().manual_seed(rows * cols)
    matrix = torch.randn(rows, row_stride, generator=gen)[:, :cols] * 100  # strided rows
    transposed, sums = native.transpose(matrix, column_sums=True)
    assert transposed.is_contiguous() and transposed.shape == (cols, rows)
    assert torch.equal(transposed, matrix.t())
    # accumulated in fp64: within fp32 rounding of the exact sums, as torch's fp32 sum is
    exact = matrix.double().sum(0)
    assert (sums.double() - exact).abs().max() <= 1e-6 * exact.abs().max() + 1e-6
    assert native.transpose(matrix)[1] is None


def test_transpose_answers_none_where_it_cannot() -> None:
    matrix = torch.randn(16, 8)
    assert native.transpose(matrix.double()) is None
    assert native.transpose(matrix.t()) is None  # columns not unit-strided
    assert native.transpose(matrix[None]) is None
    assert native.transpose(matrix[:0]) is None
    assert native.transpose(matrix.requires_grad_()) is None  # outside autograd only


def _attention_operands(b, t, s, h, d_k, d_v, causal, masked, seed):
    """q, k, v as the model makes them (strided views of stacked projections) and a key mask."""
    gen = torch.Generator().manual_seed(seed)
    stacked = torch.randn(b, t, h, 3 * max(d_k, d_v), generator=gen)
    q = stacked[..., :d_k].transpose(1, 2)
    memory = stacked if causal else torch.randn(b, s, h, 2 * max(d_k, d_v), generator=gen)
    k = memory[..., d_k : 2 * d_k].transpose(1, 2)
    v = memory[..., -d_v:].transpose(1, 2)
    allowed = None
    if masked:
        lengths = torch.randint(1, s + 1, (b,), generator=gen)
        lengths[0] = s
        allowed = (torch.arange(s)[None] < lengths[:, None])[:, None, None, :]
    return q, k, v, allowed


@pytest.mark.parametrize(
    "t, s, causal, masked",
    [
        (7, 9, False, True),
        (31, 31, True, False),
        (5, 40, False, False),
        (12, 12, True, True),
        (33, 17, False, True),
        (1, 3, False, False),
    ],
)
@pytest.mark.parametrize("d_k, d_v", [(16, 16), (64, 64), (32, 48)])
def test_training_attention_matches_sdpa_in_value_and_gradients(t, s, causal, masked, d_k, d_v):
    q, k, v, allowed = _attention_operands(3, t, s, 2, d_k, d_v, causal, masked, seed=t + d_v)
    assert native.training_attention_applies(q, k, v, allowed, causal)
    out, lse = native.training_attention(q, k, v, allowed, causal)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = native.training_attention_grad(q, k, v, out, lse, grad_out, allowed, causal)

    leaves = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    mask = allowed
    if causal:  # SDPA takes no mask with is_causal: the same rule spelled out
        mask = torch.ones(t, s, dtype=torch.bool).tril()
        mask = mask if allowed is None else allowed & mask
    want = F.scaled_dot_product_attention(*leaves, attn_mask=mask)
    want.backward(grad_out)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(lse, scores.logsumexp(-1), rtol=1e-5, atol=1e-5)
    for got, leaf in zip(grads, leaves, strict=True):
        assert got.shape == leaf.shape
        torch.testing.assert_close(got, leaf.grad, rtol=1e-5, atol=1e-5)


def test_training_attention_declines_what_it_cannot_compute() -> None:
    q, k, v, allowed = _attention_operands(2, 6, 6, 2, 16, 16, True, True, seed=0)
    assert native.training_attention_applies(q, k, v, allowed, False)
    nothing_allowed = allowed.clone()
    nothing_allowed[1] = False  # a row with no key: SDPA's business (NaN), not the kernel's
    assert not native.training_attention_applies(q, k, v, nothing_allowed, False)
    first_masked = allowed.clone()
    first_masked[1, ..., 0] = False  # causal: query 0 would see nothing
    assert not native.training_attention_applies(q, k, v, first_masked, True)
    assert native.training_attention_applies(q, k, v, first_masked, False)
    assert not native.training_attention_applies(q[:, :, :5], k, v, None, True)  # T != S
    per_query = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    assert not native.training_attention_applies(q, k, v, per_query, False)
    assert not native.training_attention_applies(
        q.bfloat16(), k.bfloat16(), v.bfloat16(), None, False
    )
    assert not native.training_attention_applies(q.double(), k.double(), v.double(), None, False)
    odd_heads = torch.randn(2, 2, 6, 20)  # not a multiple of 16
    assert not native.training_attention_applies(odd_heads, odd_heads, odd_heads, None, False)
    assert not native.training_attention_applies(q, k, odd_heads, None, False)
    strided_heads = torch.randn(2, 2, 6, 32)[..., ::2]  # last dimension not unit-strided
    assert not native.training_attention_applies(strided_heads, k, v, None, False)


def test_training_kernels_give_the_same_results_on_any_number_of_threads() -> None:
    # CI runs one torch thread per worker; the kernels split their work across threads.
    threads = torch.get_num_threads()
    q, k, v, allowed = _attention_operands(5, 13, 13, 3, 32, 16, False, True, seed=5)
    grad_out = torch.randn(5, 3, 13, 16, generator=torch.Generator().manual_seed(6))
    matrix = torch.randn(301, 70)

    def run() -> list[torch.Tensor]:
        out, lse = native.training_attention(q, k, v, allowed, False)
        grads = native.training_attention_grad(q, k, v, out, lse, grad_out, allowed, False)
        return [out, lse, *grads, *native.transpose(matrix, column_sums=True)]

    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(3)  # more threads than tasks of some kernels' splits
        for got, want in zip(run(), one, strict=True):
            assert torch.equal(got, want)
    finally:
        torch.set_num_threads(threads)
