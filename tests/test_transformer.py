"""The Transformer is the paper's, and its incremental decoder agrees with teacher forcing."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.decoding import beam_search, greedy_search
from attnlab.models.positional import SinusoidalPositions
from attnlab.models.transformer import Transformer

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
    enc = model.encode(src, pad_mask)
    state = model.init_decoder_state(enc)
    steps = []
    for t in range(tgt_in.size(1)):
        logits, state = model.decode_step(tgt_in[:, t], enc, state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


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
