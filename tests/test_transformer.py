"""The Transformer is the paper's, and its incremental decoder agrees with teacher forcing."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab import native
from attnlab.decoding import beam_search, greedy_search
from attnlab.models.positional import SinusoidalPositions
from attnlab.models.transformer import Transformer
from tests.conftest import decode_step_by_step

BOS, EOS, PAD = 2, 3, 0


def tiny(**overrides) -> Transformer:
    torch.manual_seed(0)
    args = dict(
        src_vocab_size=40,
        tgt_vocab_size=40,
        d_model=32,
        d_ff=64,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        max_positions=64,
    )
    return Transformer(**{**args, **overrides}).eval()


def padded_batch(lengths: list[int], vocab: int = 40, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    pad_mask = torch.arange(max(lengths))[None, :] >= torch.tensor(lengths)[:, None]
    return src.masked_fill(pad_mask, PAD), pad_mask


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"norm_position": "pre"},
        {"positional": "learned"},
        {"d_k": 8, "d_v": 12},
        {"share_embeddings": False, "src_vocab_size": 30},
        {"copy_attention": True},
    ],
)
def test_incremental_decoding_equals_teacher_forcing(variant):
    model = tiny(**variant)
    src, pad_mask = padded_batch([7, 4, 6], vocab=min(30, 40))
    tgt_in = torch.randint(4, 40, (3, 9))
    full = model(src, pad_mask, tgt_in)
    steps = decode_step_by_step(model, src, pad_mask, tgt_in)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_d_k_and_d_v_are_independent_projection_widths():
    model = tiny(d_model=32, n_heads=4, d_k=5, d_v=11)
    attn = model.encoder_layers[0].self_attn
    assert attn.q_proj.weight.shape == (4 * 5, 32)
    assert attn.k_proj.weight.shape == (4 * 5, 32)
    assert attn.v_proj.weight.shape == (4 * 11, 32)
    assert attn.out_proj.weight.shape == (32, 4 * 11)


def test_three_way_weight_tying_is_a_switch():
    tied = tiny()
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.output_proj.weight
    untied = tiny(share_embeddings=False, tie_output=False)
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert untied.output_proj.weight is not untied.tgt_embed.weight


def test_sinusoidal_positions_follow_the_paper_formula():
    table = SinusoidalPositions(d_model=16, max_len=50).table
    pos, i = 7, 3
    assert table[pos, 2 * i].item() == pytest.approx(
        math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6
    )
    assert table[pos, 2 * i + 1].item() == pytest.approx(
        math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6
    )


def test_embeddings_are_scaled_by_sqrt_d_model():
    model = tiny(dropout=0.0)
    tokens = torch.tensor([[5, 6]])
    expected = model.tgt_embed(tokens) * math.sqrt(32) + model.positions(2)
    torch.testing.assert_close(model._embed(model.tgt_embed, tokens), expected)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_decoding_past_max_positions_names_the_key(positional):
    model = tiny(positional=positional, max_positions=8)
    src, pad_mask = padded_batch([5, 3])
    with pytest.raises(ValueError, match="model.max_positions=8"):
        greedy_search(model, src, pad_mask, bos_id=BOS, eos_id=EOS, max_len_a=0, max_len_b=12)


def test_padding_never_changes_a_sentence_result():
    model = tiny()
    src, pad_mask = padded_batch([5, 9, 3])
    tgt_in = torch.randint(4, 40, (3, 6))
    batched = model(src, pad_mask, tgt_in)
    alone = model(src[:1, :5], pad_mask[:1, :5], tgt_in[:1])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
def test_beam_size_one_equals_greedy_on_the_transformer(length_penalty):
    model = tiny()
    src, pad_mask = padded_batch([6, 3, 8, 5], seed=3)
    greedy = greedy_search(model, src, pad_mask, bos_id=BOS, eos_id=EOS)
    beam = beam_search(
        model, src, pad_mask, bos_id=BOS, eos_id=EOS, beam_size=1, length_penalty=length_penalty
    )
    assert [h.tokens for h in greedy] == [hyps[0].tokens for hyps in beam]


def test_post_ln_is_the_default_and_pre_ln_adds_final_norms():
    assert isinstance(tiny().encoder_norm, torch.nn.Identity)
    assert isinstance(tiny(norm_position="pre").encoder_norm, torch.nn.LayerNorm)


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_cpu_training_attention_matches_fp32_sdpa_in_value_and_gradient(monkeypatch, causal):
    # bf16 training on a CPU takes the matmul path (SDPA's bf16 CPU backward is slow); it
    # must compute what fp32 SDPA computes, to bf16 accuracy, gradients included.
    from attnlab.models import attention
    from attnlab.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    layer = MultiHeadAttention(64, 4, 16, 16, 0.0)
    x = torch.randn(3, 7, 64)
    keys_allowed = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    keys_allowed[1, ..., 5:] = False  # a padded sentence

    def run(dtype_context):
        layer.zero_grad()
        inputs = x.clone().requires_grad_(True)
        with dtype_context:
            out, _ = layer(inputs, attn_mask=None if causal else keys_allowed, is_causal=causal)
        out.float().square().sum().backward()
        return out.float(), inputs.grad, layer.q_proj.weight.grad.clone()

    reference = run(torch.autocast("cpu", enabled=False))
    sdpa = attention.F.scaled_dot_product_attention

    def no_bf16_sdpa(q, *args, **kwargs):
        assert q.dtype != torch.bfloat16, "bf16 CPU training went through SDPA"
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", no_bf16_sdpa)
    bf16 = run(torch.autocast("cpu", dtype=torch.bfloat16))
    for got, want in zip(bf16, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05 * want.abs().max().item())


@pytest.mark.skipif(not native.available(), reason="no C compiler: no native kernels")
@pytest.mark.parametrize("kind", ["padded", "causal", "cross"])
def test_native_training_attention_computes_what_sdpa_does(monkeypatch, kind):
    # fp32 CPU attention over whole sequences takes the native kernel; SDPA is the reference.
    from attnlab.models import attention
    from attnlab.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    layer = MultiHeadAttention(64, 4, 16, 32, 0.0)  # d_v != d_k
    x, memory = torch.randn(3, 7, 64), torch.randn(3, 9, 64)
    allowed = torch.ones(3, 1, 1, 9 if kind == "cross" else 7, dtype=torch.bool)
    allowed[1, ..., 5:] = False  # a padded sentence
    calls = []
    kernel = attention.native.training_attention
    monkeypatch.setattr(
        attention.native,
        "training_attention",
        lambda *args: calls.append(1) or kernel(*args),
    )

    def run() -> list[torch.Tensor]:
        layer.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(True)
        source = memory.clone().requires_grad_(True)
        out, _ = layer(
            inputs,
            source if kind == "cross" else None,
            attn_mask=None if kind == "causal" else allowed,
            is_causal=kind == "causal",
        )
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [inputs.grad] + ([source.grad] if kind == "cross" else [])
        return [out.detach(), *grads, *(p.grad for p in layer.parameters() if p.grad is not None)]

    ours = run()
    assert calls == [1]
    monkeypatch.setattr(attention, "NATIVE_ATTENTION_MAX_KEYS", 0)  # SDPA
    reference = run()
    assert calls == [1]
    for got, want in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_stacked_projections_compute_what_one_matmul_each_does(cross, packed):
    # Q, K, V (cross-attention: K, V) run as one matmul with stacked weights; a projection with
    # a hook is called on its own. Both ways must give the same output and gradients, and the
    # hook must run.
    from attnlab.models.attention import MultiHeadAttention, Packing

    torch.manual_seed(0)
    layer = MultiHeadAttention(32, 4, 8, 6, 0.0)  # d_v != d_k: the split widths differ
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[1, 5:] = keep[2, 3:] = False
    packing = Packing.from_mask(keep) if packed else None
    x = torch.randn(3, 7, 32)
    memory = torch.randn(3, 5, 32)
    allowed = (keep if not cross else torch.ones(3, 5, dtype=torch.bool))[:, None, None, :]

    def run() -> list[torch.Tensor]:
        layer.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(True)
        source = memory.clone().requires_grad_(True)
        query = packing.pack(inputs) if packed else inputs
        out, _ = layer(query, source if cross else None, attn_mask=allowed, packing=packing)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [inputs.grad] + ([source.grad] if cross else [])
        return [out.detach(), *grads, *(p.grad for p in layer.parameters() if p.grad is not None)]

    stacked = run()
    calls = []
    layer.k_proj.register_forward_hook(lambda *_: calls.append("k"))
    one_each = run()
    assert calls == ["k"]
    assert len(stacked) == len(one_each) == (3 if cross else 2) + 8  # + 4 weights, 4 biases
    for got, want in zip(stacked, one_each, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_growing_cache_survives_growth_forks_and_reordering():
    """The self-attention cache writes in place, so what it must keep: the steps it was given,
    past its first capacity, when two continuations branch from one cache, and after rows are
    reordered (beam parents) or dropped (finished sentences)."""
    from attnlab.models.kv_cache import GrowingKVCache

    torch.manual_seed(0)
    steps = [(torch.randn(3, 1, 2, 4), torch.randn(3, 1, 2, 5)) for _ in range(7)]

    def expected(chosen):
        keys, values = zip(*chosen, strict=True)
        return torch.cat(keys, 1).transpose(1, 2), torch.cat(values, 1).transpose(1, 2)

    cache = GrowingKVCache.empty(torch.zeros(()), 3, 2, 4, 5, capacity=2)
    for key, value in steps[:5]:  # grows twice
        cache = cache.append(key, value)
    first = cache.append(*steps[5])
    second = cache.append(*steps[6])  # branches from the same cache as `first`
    for got, chosen in ((cache, steps[:5]), (first, steps[:6]), (second, steps[:5] + steps[6:])):
        want_key, want_value = expected(chosen)
        assert torch.equal(got.key, want_key) and torch.equal(got.value, want_value)

    index = torch.tensor([2, 2, 0, 1])  # a reorder that also repeats and grows the batch
    moved = first.index_select(index).append(*(torch.randn(4, 1, 2, d) for d in (4, 5)))
    want_key, _ = expected(steps[:6])
    assert torch.equal(moved.key[:, :, :6], want_key[index])
    dropped = second.index_select(torch.tensor([1]))
    assert torch.equal(dropped.value, expected(steps[:5] + steps[6:])[1][1:2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_beam_cache_attends_over_each_rows_own_ancestry(dtype):
    """With K beams per sentence the cache keeps one copy of every step and a table of each
    row's ancestors; attending through it equals attending over the row's gathered past, after
    beam reorders and after a sentence leaves the batch."""
    from attnlab.models.kv_cache import GrowingKVCache

    torch.manual_seed(0)
    n, k, h, d_k, d_v = 3, 4, 2, 8, 6

    def step(rows):
        return torch.randn(rows, 1, h, d_k, dtype=dtype), torch.randn(rows, 1, h, d_v, dtype=dtype)

    cache = GrowingKVCache.empty(torch.zeros((), dtype=dtype), n, h, d_k, d_v, capacity=2)
    cache = cache.append(*step(n)).expand_beams(k)
    for _ in range(5):
        parents = (torch.arange(n)[:, None] * k + torch.randint(0, k, (n, k))).view(-1)
        cache = cache.index_select(parents).append(*step(n * k))
    query = torch.randn(n * k, h, 1, d_k, dtype=dtype)
    scores = (query.float() @ cache.key.float().transpose(-2, -1)) / math.sqrt(d_k)
    want = scores.softmax(-1) @ cache.value.float()
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cache.attend(query).float(), want, **tol)

    survivors = torch.tensor([0, 2]).repeat_interleave(k) * k + torch.arange(k).repeat(2)
    kept = cache.index_select(survivors)
    assert torch.equal(kept.key, cache.key[survivors])
    torch.testing.assert_close(kept.attend(query[survivors]).float(), want[survivors], **tol)

    mixed = torch.tensor([1, 5, 5, 0])  # rows from different sentences: one beam per row
    loose = cache.index_select(mixed)
    assert torch.equal(loose.key, cache.key[mixed]) and torch.equal(loose.value, cache.value[mixed])


def test_bf16_incremental_decoding_follows_teacher_forcing():
    # Under bf16 autocast the cache takes the keys' dtype and single queries take the matmul
    # path with an fp32 softmax; the logits stay within bf16 accuracy of teacher forcing.
    model = tiny()
    src, pad_mask = padded_batch([7, 4, 6])
    tgt_in = torch.randint(4, 40, (3, 9))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(src, pad_mask, tgt_in).float()
        enc = model.encode(src, pad_mask)
        state = model.init_decoder_state(enc)
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state = model.decode_step(tgt_in[:, t], enc, state)
            steps.append(logits.float())
    assert state.self_caches[0].key.dtype == torch.bfloat16
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=0.05, atol=0.1)


def _bf16_steps(model, src, pad_mask, tgt_in, stacked: bool) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc = model.encode(src, pad_mask)
        state = model.init_decoder_state(enc)
        assert state.stacked_qkv is not None and state.stacked_qkv[0][0].dtype == torch.bfloat16
        if not stacked:
            state.stacked_qkv = None  # each step's Q, K, V by the three projections
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state = model.decode_step(tgt_in[:, t], enc, state)
            steps.append(logits.float())
    return torch.stack(steps, dim=1)


def test_bf16_decoding_projects_q_k_v_stacked_from_the_current_weights():
    """In bf16 a decoding step projects Q, K and V by one matmul against the three weights
    stacked, which gives what the three projections give. The stack is built per decoding:
    after a fused Adam step (which changes weights without bumping their version) decoding
    follows the new weights."""
    model = tiny(d_k=8, d_v=12)
    src, pad_mask = padded_batch([7, 4, 6])
    tgt_in = torch.randint(4, 40, (3, 9))
    stacked = _bf16_steps(model, src, pad_mask, tgt_in, stacked=True)
    torch.testing.assert_close(stacked, _bf16_steps(model, src, pad_mask, tgt_in, stacked=False))

    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    except RuntimeError:  # torch < 2.4 has no fused Adam for CPU tensors
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    model(src, pad_mask, tgt_in).float().square().mean().backward()
    optimizer.step()
    model.eval()
    after = _bf16_steps(model, src, pad_mask, tgt_in, stacked=True)
    assert not torch.allclose(after, stacked, rtol=0.05, atol=0.1)  # the weights did change
    torch.testing.assert_close(after, _bf16_steps(model, src, pad_mask, tgt_in, stacked=False))
    with torch.no_grad():  # fp32 keeps three projections: no stack to build
        assert model.init_decoder_state(model.encode(src, pad_mask)).stacked_qkv is None
        with torch.autocast("cpu", dtype=torch.bfloat16):  # nor float64, which autocast leaves
            double = tiny().double()
            enc = double.encode(src, pad_mask)
            state = double.init_decoder_state(enc)
            assert state.stacked_qkv is None
            assert double.decode_step(tgt_in[:, 0], enc, state)[0].dtype == torch.float64
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # nor does decoding with gradients
        enc = model.encode(src, pad_mask)
        state = model.init_decoder_state(enc)
        assert state.stacked_qkv is None
        logits, _ = model.decode_step(tgt_in[:, 0], enc, state)
    logits.float().sum().backward()
    assert model.decoder_layers[0].self_attn.v_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("extra_rows", [0, 11])
@pytest.mark.parametrize(
    "variant",
    [{}, {"norm_position": "pre"}, {"positional": "learned"}, {"copy_attention": True}],
)
def test_skipping_padding_changes_no_logit_and_no_gradient(variant, extra_rows, monkeypatch):
    """Given the real target positions, the model runs its position-wise layers on real tokens
    only; the logits there, and every parameter's gradient, are those of the padded pass. So
    they are with extra rows packed after the real ones (row counts rounded for oneDNN)."""
    from attnlab.losses import LabelSmoothedCrossEntropy
    from attnlab.models import attention, transformer

    monkeypatch.setattr(transformer, "packing_for", lambda x: extra_rows > 0)
    monkeypatch.setattr(attention, "rounded_rows", lambda n: n + extra_rows)

    src, src_pad_mask = padded_batch([7, 3, 6, 5])
    tgt_lengths = torch.tensor([4, 8, 2, 6])
    tgt_in = torch.randint(4, 40, (4, 8)).masked_fill(
        torch.arange(8)[None, :] >= tgt_lengths[:, None], PAD
    )
    tgt_out = tgt_in.roll(-1, dims=1).masked_fill(tgt_in == PAD, PAD)
    positions = (tgt_in != PAD).reshape(-1).nonzero().squeeze(1)
    criterion = LabelSmoothedCrossEntropy(0.1, ignore_index=PAD)

    def run(**kwargs):
        model = tiny(**variant)
        logits = model(src, src_pad_mask, tgt_in, **kwargs)
        loss, _ = criterion(logits, tgt_out, target_positions=kwargs.get("target_positions"))
        loss.backward()
        return logits, {name: p.grad for name, p in model.named_parameters()}

    padded, padded_grads = run()
    real, real_grads = run(target_positions=positions)
    assert real.shape == (int(tgt_lengths.sum()), 40)
    torch.testing.assert_close(real, padded.reshape(-1, 40)[positions], atol=1e-5, rtol=1e-5)
    for name, grad in padded_grads.items():
        torch.testing.assert_close(real_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("ctc", [False, True])
def test_beams_sharing_the_encoder_output_decode_as_copies_do(monkeypatch, ctc):
    """Beam search shares each sentence's encoder output (and cross-attention keys/values)
    among its beams; hypotheses and scores are those of giving every beam its own copy, also
    as sentences of different max lengths leave the batch."""
    model = tiny(ctc_head=True) if ctc else tiny()
    src, pad_mask = padded_batch([6, 2, 8, 4, 7], seed=5)
    kw = dict(bos_id=BOS, eos_id=EOS, beam_size=4, nbest=4, max_len_a=1.0, max_len_b=1)
    if ctc:
        kw["ctc_weight"] = 0.3
    shared = beam_search(model, src, pad_mask, **kw)
    monkeypatch.setattr(model, "expand_for_beams", None)  # beam search then copies rows
    copied = beam_search(model, src, pad_mask, **kw)
    assert [[h.tokens for h in hyps] for hyps in shared] == [
        [h.tokens for h in hyps] for hyps in copied
    ]
    for mine, theirs in zip(shared, copied, strict=True):
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-5)
    assert len({len(hyps[0].tokens) for hyps in shared}) > 1  # sentences finished apart


def test_a_shared_encoder_output_refuses_rows_that_split_sentences():
    model = tiny()
    src, pad_mask = padded_batch([6, 2, 8])
    enc = model.encode(src, pad_mask)
    enc, _ = model.expand_for_beams(enc, model.init_decoder_state(enc), 4)
    kept = model.reorder_encoder_out(enc, torch.arange(4, 12))  # sentences 1 and 2
    torch.testing.assert_close(kept.memory, model.encode(src, pad_mask).memory[1:])
    with pytest.raises(ValueError, match="whole sentences"):
        model.reorder_encoder_out(enc, torch.tensor([1, 5, 5, 0]))


def test_attention_weights_of_shared_beams_come_one_row_per_beam():
    model = tiny()
    src, pad_mask = padded_batch([6, 2, 8])
    enc = model.encode(src, pad_mask)
    enc, state = model.expand_for_beams(enc, model.init_decoder_state(enc), 4)
    cross = model.decoder_layers[0].cross_attn
    cross.keep_weights = True
    try:
        logits, _ = model.decode_step(torch.full((12,), BOS), enc, state)
    finally:
        cross.keep_weights = False
    assert cross.last_weights.shape == (12, 4, 1, 8)
    torch.testing.assert_close(cross.last_weights[4], cross.last_weights[7])  # one sentence
    assert logits.shape == (12, 40)


def test_rounded_row_counts_add_at_most_a_thirty_second_and_are_few():
    from attnlab.models.attention import rounded_rows

    counts = range(1, 9000)
    for n in counts:
        assert n <= rounded_rows(n) <= n * 33 / 32
    assert rounded_rows(2400) == 2432 and rounded_rows(100) == 100 and rounded_rows(101) == 102
    assert len({rounded_rows(n) for n in range(2049, 4097)}) == 32


def test_packed_rows_beyond_the_real_ones_are_dropped_when_unpacked():
    from attnlab.models.attention import Packing

    keep = torch.tensor([[True, True, False], [True, False, False]])
    packing = Packing.with_rows(keep.reshape(-1).nonzero().squeeze(1), 2, 3, rows=5)
    x = torch.arange(6.0).view(2, 3, 1) + 1
    packed = packing.pack(x)
    assert packed.squeeze(1).tolist() == [1.0, 2.0, 4.0, 1.0, 1.0]
    assert packing.positions.tolist() == [0, 1, 0, 0, 0]
    assert packing.unpack(packed * 10).squeeze(2).tolist() == [[10.0, 20.0, 0.0], [40.0, 0.0, 0.0]]
    assert packing.real(packed).shape == (3, 1)
