"""The RNN-attention baselines honour the same incremental interface as the Transformer."""

from __future__ import annotations

import pytest
import torch

from attnlab import native
from attnlab.decoding import beam_search, greedy_search
from attnlab.models.rnn import BahdanauRNN, LuongRNN
from tests.conftest import STOP_WHEN_LEARNT, decode_step_by_step

VARIANTS = [
    (BahdanauRNN, {}),
    (BahdanauRNN, {"deep_output": False, "bidirectional": False, "decoder_layers": 2}),
    (LuongRNN, {}),
    (LuongRNN, {"score": "dot", "bidirectional": False}),
    (LuongRNN, {"score": "concat", "encoder_layers": 1, "input_feeding": False}),
]


def build(cls, **overrides):
    torch.manual_seed(0)
    return cls(30, 30, embed_dim=16, hidden_size=24, **overrides).eval()


def batch():
    src = torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(1))
    pad_mask = torch.zeros(3, 7, dtype=torch.bool)
    pad_mask[1, 4:] = True
    pad_mask[2, 6:] = True
    return src.masked_fill(pad_mask, 0), pad_mask


@pytest.mark.parametrize(("cls", "overrides"), VARIANTS)
def test_a_sentence_gives_the_same_result_alone_and_in_a_padded_batch(cls, overrides):
    model = build(cls, **overrides)
    src, pad_mask = batch()
    tgt_in = torch.randint(4, 30, (3, 5))
    together = model(src, pad_mask, tgt_in)
    alone = model(src[1:2, :4], pad_mask[1:2, :4], tgt_in[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-6, rtol=1e-5)
    greedy_together = greedy_search(model, src, pad_mask, bos_id=2, eos_id=3)
    greedy_alone = greedy_search(model, src[1:2, :4], pad_mask[1:2, :4], bos_id=2, eos_id=3)
    assert greedy_together[1].tokens == greedy_alone[0].tokens


@pytest.mark.parametrize(("cls", "overrides"), VARIANTS)
def test_incremental_decoding_equals_teacher_forcing(cls, overrides):
    model = build(cls, **overrides)
    src, pad_mask = batch()
    tgt_in = torch.randint(4, 30, (3, 6))
    full = model(src, pad_mask, tgt_in)
    enc = model.encode(src, pad_mask)
    state = model.init_decoder_state(enc)
    for t in range(tgt_in.size(1)):
        logits, state = model.decode_step(tgt_in[:, t], enc, state)
        torch.testing.assert_close(logits, full[:, t])


@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        *VARIANTS,
        (BahdanauRNN, {"copy_attention": True}),
        (LuongRNN, {"copy_attention": True}),
        (LuongRNN, {"input_feeding": False}),
        (LuongRNN, {"input_feeding": False, "score": "dot", "copy_attention": True}),
        (LuongRNN, {"score": "concat"}),
    ],
)
@pytest.mark.parametrize("extra_rows", [0, 5])
def test_training_on_the_real_positions_matches_step_by_step_decoding(
    cls, overrides, extra_rows, monkeypatch
):
    """Teacher forcing embeds the target once and applies the output layer once, to the real
    positions only: the same logits and the same gradients as decode_step run step by step.
    So they are with extra rows after the real ones (row counts rounded for oneDNN)."""
    from attnlab.models import attention, rnn

    monkeypatch.setattr(rnn, "packing_for", lambda x: extra_rows > 0)
    monkeypatch.setattr(attention, "rounded_rows", lambda n: n + extra_rows)
    model = build(cls, dropout=0.0, **overrides).train()
    src, pad_mask = batch()
    tgt_in = torch.randint(4, 30, (3, 6), generator=torch.Generator().manual_seed(2))
    tgt_in[1, 3:] = 0
    tgt_in[2, 5:] = 0
    positions = (tgt_in != 0).flatten().nonzero().squeeze(1)
    probe = torch.randn(len(positions), 30, generator=torch.Generator().manual_seed(3))

    def logits_and_grads(run):
        model.zero_grad(set_to_none=True)
        logits = run()
        (logits * probe).sum().backward()
        return logits.detach(), {
            n: p.grad for n, p in model.named_parameters() if p.grad is not None
        }

    def step_by_step():
        logits = decode_step_by_step(model, src, pad_mask, tgt_in)
        return logits.flatten(0, 1).index_select(0, positions)

    logits, grads = logits_and_grads(lambda: model(src, pad_mask, tgt_in, positions))
    expected_logits, expected_grads = logits_and_grads(step_by_step)
    assert logits.shape == (len(positions), 30)
    torch.testing.assert_close(logits, expected_logits, atol=1e-6, rtol=1e-5)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(("cls", "overrides"), VARIANTS)
def test_beam_size_one_equals_greedy(cls, overrides):
    model = build(cls, **overrides)
    src, pad_mask = batch()
    greedy = greedy_search(model, src, pad_mask, bos_id=2, eos_id=3)
    beam = beam_search(model, src, pad_mask, bos_id=2, eos_id=3, beam_size=1)
    assert [h.tokens for h in greedy] == [hyps[0].tokens for hyps in beam]


def test_alignments_are_returned_on_request():
    model = build(LuongRNN)
    model.keep_weights = True
    src, pad_mask = batch()
    enc = model.encode(src, pad_mask)
    state = model.init_decoder_state(enc)
    for token in (2, 5, 6):
        _, state = model.decode_step(torch.full((3,), token), enc, state)
    weights = torch.stack(state.weights, dim=1)  # [B, T, S]
    assert weights.shape == (3, 3, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3))
    assert weights[1, :, 4:].abs().max() == 0  # padding never receives attention


@pytest.mark.parametrize(("cls", "overrides"), VARIANTS)
def test_alignments_are_an_fp32_softmax_under_bf16_autocast(cls, overrides):
    """bf16 scores, but the softmax in fp32 (as the Transformer's attention): each row sums
    to 1 to fp32 rounding, where a bf16 softmax is off by up to ~1e-2."""
    model = build(cls, **overrides)
    model.keep_weights = True
    src, pad_mask = batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc = model.encode(src, pad_mask)
        state = model.init_decoder_state(enc)
        for token in (2, 5, 6):
            logits, state = model.decode_step(torch.full((3,), token), enc, state)
    weights = torch.stack(state.weights, dim=1)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3), rtol=0, atol=1e-6)
    assert weights[1, :, 4:].abs().max() == 0
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("score", ["dot", "general", "concat", "additive"])
def test_fp64_attention_stays_fp64_and_passes_gradcheck(score):
    from attnlab.models.attention import AdditiveAttention, GlobalAttention

    torch.manual_seed(0)
    attention = AdditiveAttention(6, 6, 5) if score == "additive" else GlobalAttention(6, 6, score)
    attention = attention.double()
    keys = torch.randn(2, 4, 6, dtype=torch.float64)
    pad_mask = torch.tensor([[False] * 4, [False, False, False, True]])
    query = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    context, weights = attention(query, keys, attention.precompute(keys), pad_mask)
    assert context.dtype == weights.dtype == torch.float64
    assert torch.autograd.gradcheck(
        lambda q: attention(q, keys, attention.precompute(keys), pad_mask), (query,)
    )


@pytest.mark.parametrize("family", ["rnn_luong", "rnn_bahdanau"])
def test_each_rnn_learns_to_reverse_sequences(make_cfg, family):
    # The Transformer's toy experiment with only the model swapped (and the RNN study's
    # optimizer settings): the same command line works for every family.
    from attnlab.train import train

    metrics = train(
        make_cfg(
            f"experiment=rnn_vs_transformer/{family.removeprefix('rnn_')}",
            "model.embed_dim=64",
            "model.hidden_size=64",
            "model.dropout=0.0",
            "trainer.max_epochs=15",
            *STOP_WHEN_LEARNT,
            base=[
                "data=toy",
                "logger=csv",
                "trainer.max_time=null",
                "trainer.enable_progress_bar=false",
                "callbacks.attention_maps=null",
            ],
        )
    )
    assert metrics["test"]["test"]["exact_match"] >= 95.0


def test_an_lstm_runs_in_fp32_under_bf16_autocast_where_onednn_has_no_bf16_lstm(monkeypatch):
    """Without AVX-512 oneDNN has no bf16 LSTM and autocast's bf16 LSTM fails; there the LSTM
    runs in fp32, exactly as it does without autocast, bf16 inputs included."""
    from torch.nn.utils.rnn import pack_padded_sequence

    from attnlab.models import recurrent

    monkeypatch.setattr(recurrent, "cpu_has_bf16_lstm", lambda: False)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 6, num_layers=2, batch_first=True)
    x = torch.randn(3, 5, 8).bfloat16().float()
    hidden = (torch.randn(2, 3, 6).bfloat16().float(), torch.randn(2, 3, 6).bfloat16().float())
    expected, (h, c) = lstm(x, hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, (got_h, got_c) = recurrent.run_recurrent(
            lstm, x.bfloat16(), tuple(t.bfloat16() for t in hidden)
        )
        packed = pack_padded_sequence(
            x, torch.tensor([5, 2, 4]), batch_first=True, enforce_sorted=False
        )
        packed_out, _ = recurrent.run_recurrent(lstm, packed)
    assert got.dtype == torch.float32 and packed_out.data.dtype == torch.float32
    assert torch.equal(got, expected) and torch.equal(got_h, h) and torch.equal(got_c, c)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional", "bias"), [(2, True, True), (1, False, False)])
def test_an_encoder_rnn_gives_each_row_what_it_gives_that_row_alone(
    cell, layers, bidirectional, bias
):
    """run_padded may run a training LSTM once per distinct length and a GRU over the padded
    batch instead of packed: either way each row's outputs, final states and gradients are
    those of the row run alone, unpadded, and the outputs are zero at padding."""
    from attnlab.models.recurrent import run_padded

    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        8, 6, num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=True
    )
    dirs = 2 if bidirectional else 1
    lengths = torch.tensor([2, 5, 4, 1, 5])  # grouped by length, not a self-inverse order
    # A step of padding even for the longest row; 17 of 30 steps real, so the GRU runs padded.
    x = torch.randn(5, 6, 8, requires_grad=True)
    probe = torch.randn(5, 6, 6 * dirs)
    outputs, final = run_padded(rnn, x, lengths)
    (outputs * probe).sum().add(sum(f.sum() for f in final)).backward()
    grad, x.grad = x.grad, None
    assert outputs.shape == (5, 6, 6 * dirs) and final[0].shape == (layers * dirs, 5, 6)
    for row, length in enumerate(lengths.tolist()):
        alone, alone_final = rnn(x[row : row + 1, :length])
        alone_final = alone_final if isinstance(alone_final, tuple) else (alone_final,)
        (alone * probe[row : row + 1, :length]).sum().add(
            sum(f.sum() for f in alone_final)
        ).backward()
        torch.testing.assert_close(outputs[row, :length], alone[0], atol=1e-6, rtol=1e-5)
        assert outputs[row, length:].abs().max() == 0
        for got, expected in zip(final, alone_final, strict=True):
            torch.testing.assert_close(got[:, row], expected[:, 0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grad[row], x.grad[row], atol=1e-6, rtol=1e-5)
        x.grad = None


@pytest.mark.parametrize("score", ["dot", "general"])
def test_step_attention_sums_the_memory_gradients_over_the_steps_exactly(score):
    """Teacher-forced Luong steps attend through StepAttention, whose backward sums the memory's
    and keys' gradients once: the values of GlobalAttention, and gradients that pass gradcheck
    (fp64, padding, several steps, the alignment's own gradient included)."""
    from attnlab.models.attention import GlobalAttention
    from attnlab.models.step_attention import StepAttention

    torch.manual_seed(0)
    attention = GlobalAttention(6, 6, score).double()
    memory = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    pad_mask = torch.tensor([[False] * 4, [False, False, False, True]])

    def attend_each_step(memory, queries, step_attention):
        keys = attention.precompute(memory)
        attend = (
            StepAttention(memory, keys, pad_mask)
            if step_attention
            else lambda q: attention(q, memory, keys, pad_mask)
        )
        return torch.cat([torch.cat(attend(q), -1) for q in queries.unbind(1)], -1)

    torch.testing.assert_close(
        attend_each_step(memory, queries, True), attend_each_step(memory, queries, False)
    )
    assert torch.autograd.gradcheck(lambda m, q: attend_each_step(m, q, True), (memory, queries))


@pytest.mark.parametrize(("cls", "overrides"), [(BahdanauRNN, {}), (LuongRNN, {"score": "concat"})])
def test_additive_scores_train_the_same_with_and_without_the_native_kernels(cls, overrides):
    """Teacher-forced additive scores (Bahdanau's, Luong's concat) through the native kernels
    (fp32, CPU) or through PyTorch's ops when they are switched off: the same logits and
    gradients."""
    if not native.available():
        pytest.skip("no C compiler: the native kernels could not be built")
    model = build(cls, dropout=0.0, **overrides).train()
    src, pad_mask = batch()
    tgt_in = torch.randint(4, 30, (3, 6), generator=torch.Generator().manual_seed(2))

    def logits_and_grads():
        model.zero_grad(set_to_none=True)
        logits = model(src, pad_mask, tgt_in)
        logits.logsumexp(-1).sum().backward()
        return logits.detach(), {n: p.grad for n, p in model.named_parameters()}

    assert model._for_teacher_forcing(model.encode(src, pad_mask)).step_attention is not None
    logits, grads = logits_and_grads()
    native.use_native_kernels(False)
    try:
        assert model._for_teacher_forcing(model.encode(src, pad_mask)).step_attention is None
        expected_logits, expected_grads = logits_and_grads()
    finally:
        native.use_native_kernels(True)
    torch.testing.assert_close(logits, expected_logits, atol=1e-6, rtol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("cls", "overrides"), [(LuongRNN, {}), (BahdanauRNN, {}), (LuongRNN, {"score": "concat"})]
)
def test_a_backward_that_stops_short_of_the_encoder_leaves_its_gradients_exact(cls, overrides):
    """Teacher-forced steps attend through StepAttention (Luong's dot and general scores) or
    AdditiveStepScores (additive scores, with the native kernels), which sum the encoder side's
    gradients after the last step. A pass that stops at the decoder's weights first
    (``backward(inputs=...)``) must not leave its steps' parts behind for the next pass."""
    additive = cls is BahdanauRNN or overrides.get("score") == "concat"
    if additive and not native.available():
        pytest.skip("no C compiler: the native kernels could not be built")
    model = build(cls, dropout=0.0, **overrides).train()
    src, pad_mask = batch()
    tgt_in = torch.randint(4, 30, (3, 6), generator=torch.Generator().manual_seed(2))
    assert model._for_teacher_forcing(model.encode(src, pad_mask)).step_attention is not None

    def encoder_grads(run):
        model.zero_grad(set_to_none=True)
        loss = run().logsumexp(-1).sum()
        decoder_weights = list(model.decoder.parameters())
        loss.backward(inputs=decoder_weights, retain_graph=True)  # stops short of the memory
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.encoder.named_parameters()}

    got = encoder_grads(lambda: model(src, pad_mask, tgt_in))
    # decode_step attends through the model's attention module, with autograd's gradients.
    expected = encoder_grads(lambda: decode_step_by_step(model, src, pad_mask, tgt_in))
    for name, grad in got.items():
        torch.testing.assert_close(grad, expected[name], atol=1e-6, rtol=1e-5, msg=name)
