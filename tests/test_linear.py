"""The oneDNN path of fp32 CPU linear layers computes what ``F.linear`` does, forward and
backward, and steps aside wherever it does not apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models import linear as L

needs_onednn = pytest.mark.skipif(not L.onednn_available(), reason="no oneDNN linear op here")


@pytest.fixture
def onednn_on():
    was = L.onednn_mode()
    L.use_onednn(True)
    yield
    L.use_onednn(was)


def _weight_grads_through_onednn(monkeypatch, on: bool) -> None:
    """Route weight gradients through oneDNN (or not) whatever this CPU is."""
    monkeypatch.setattr(L, "onednn_weight_grads_by_default", lambda: on)
    L.use_onednn(L.onednn_mode())


def _forward_backward(layer: nn.Linear, x: torch.Tensor) -> list[torch.Tensor]:
    layer.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [x.grad, layer.weight.grad] + ([layer.bias.grad] if layer.bias is not None else [])
    return [out.detach(), *grads]


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 48), (3, 5, 48)])
@pytest.mark.parametrize("out_features", [24, 48, 96])
@pytest.mark.parametrize("weight_grads", [False, True])
def test_output_and_gradients_match_f_linear(
    onednn_on, monkeypatch, bias, shape, out_features, weight_grads
):
    _weight_grads_through_onednn(monkeypatch, weight_grads)
    torch.manual_seed(0)
    layer = L.Linear(48, out_features, bias=bias)
    x = torch.randn(*shape)
    ours = _forward_backward(layer, x)
    L.use_onednn(False)
    reference = _forward_backward(layer, x)
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("weight_grads", [False, True])
def test_the_switch_decides_the_path(onednn_on, monkeypatch, weight_grads):
    _weight_grads_through_onednn(monkeypatch, weight_grads)
    calls = []
    real = L._linear_pointwise

    def counting(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(L, "_linear_pointwise", counting)
    layer = L.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).sum().backward()
    # the forward and the input gradient, and the weight gradient where it is routed too
    assert len(calls) == (3 if weight_grads else 2)
    L.use_onednn(False)
    layer(x).sum().backward()
    assert len(calls) == (3 if weight_grads else 2)


@pytest.mark.parametrize(
    "vendor, flags, routed",
    [
        ("AuthenticAMD", {"avx2", "avx512f"}, True),
        ("AuthenticAMD", {"avx2"}, False),  # Zen 3: MKL's AVX2 weight gradients were faster
        ("GenuineIntel", {"avx2", "avx512f"}, False),  # MKL runs AVX-512 there
    ],
)
def test_weight_gradients_take_onednn_on_amd_with_avx512_only(monkeypatch, vendor, flags, routed):
    monkeypatch.setattr(L, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(L, "cpu_flags", lambda: flags)
    assert L.onednn_weight_grads_by_default() is routed


@needs_onednn
def test_other_dtypes_and_autocast_take_f_linear(onednn_on, monkeypatch):
    def refuse(*args):
        raise AssertionError("oneDNN path taken")

    monkeypatch.setattr(L, "_linear_pointwise", refuse)
    layer = L.Linear(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(4, 16)).dtype == torch.bfloat16
    double = L.Linear(16, 8).double()
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(double, (x,))


def test_same_parameters_and_state_dict_as_nn_linear():
    ours, theirs = L.Linear(12, 6), nn.Linear(12, 6)
    assert isinstance(ours, nn.Linear)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 12)
    torch.testing.assert_close(ours(x), F.linear(x, theirs.weight, theirs.bias))


def test_switching_on_where_unavailable_stays_off(monkeypatch):
    was = L.onednn_mode()
    monkeypatch.setattr(L, "onednn_available", lambda: False)
    try:
        assert L.use_onednn(True) is False
        assert L.Linear(4, 2)(torch.randn(3, 4)).shape == (3, 2)
    finally:
        monkeypatch.undo()
        L.use_onednn(was)


@needs_onednn
@pytest.mark.parametrize("weight_grads", [False, True])
def test_a_transformer_training_step_is_the_same_on_both_paths(
    onednn_on, monkeypatch, weight_grads
):
    _weight_grads_through_onednn(monkeypatch, weight_grads)
    from tests.test_transformer import padded_batch, tiny

    model = tiny()  # eval mode: no dropout, so both passes see the same function
    src, src_pad = padded_batch([9, 6, 4])
    tgt_in, tgt_out = padded_batch([7, 7, 7], seed=2)[0], padded_batch([7, 7, 7], seed=3)[0]

    def loss_and_grads() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        logits = model(src, src_pad, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
        loss.backward()
        return [loss.detach()] + [p.grad for p in model.parameters()]

    ours = loss_and_grads()
    L.use_onednn(False)
    reference = loss_and_grads()
    for got, want in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_modes_the_op_has_no_rule_for_take_f_linear(onednn_on):
    from torch.utils.flop_counter import FlopCounterMode

    layer = L.Linear(8, 5)
    with FlopCounterMode(display=False) as counter:  # a dispatch mode
        layer(torch.randn(100, 8))
    assert counter.get_total_flops() == 2 * 100 * 8 * 5
    assert torch.func.vmap(layer)(torch.randn(4, 3, 8)).shape == (4, 3, 5)
    grads = torch.func.grad(lambda x: layer(x).sum())(torch.randn(3, 8))
    torch.testing.assert_close(grads, layer.weight.sum(0).expand(3, 8))


@needs_onednn
def test_double_backward_is_refused_not_silently_wrong(onednn_on):
    layer = L.Linear(8, 5)
    x = torch.randn(3, 8, requires_grad=True)
    (grad_x,) = torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(grad_x.sum(), layer.weight)


# -- packed weights (inference scopes) ----------------------------------------------------------
@pytest.fixture
def count_packing(monkeypatch):
    packed = []
    real = L._reorder_linear_weight

    def counting(weight, rows):
        packed.append((tuple(weight.shape), weight.dtype, rows))
        return real(weight, rows)

    monkeypatch.setattr(L, "_reorder_linear_weight", counting)
    return packed


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
def test_packed_weights_give_f_linear_outputs_from_the_second_call(onednn_on, count_packing, bias):
    torch.manual_seed(0)
    layer = L.Linear(48, 24, bias=bias)
    inputs = [
        torch.randn(7, 48),
        torch.randn(5, 1, 48),
        torch.randn(6, 3, 48)[:, ::2],  # strided
        torch.randn(1, 48).expand(4, 48),  # expanded
        torch.randn(0, 48),  # empty
    ]
    through = []
    real = L._linear_pointwise

    def spying(x, weight, *args):
        through.append(weight.is_mkldnn)
        return real(x, weight, *args)

    with torch.no_grad(), L.packed_weights(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(L, "_linear_pointwise", spying)
        got = [layer(x) for x in inputs]
    assert count_packing == [((24, 48), torch.float32, 5)]  # once, at the second call (5 rows)
    assert through == [False, True, True, True, True]  # the packed weight from then on
    assert not L._scopes.packed  # dropped when the scope closed
    for x, out in zip(inputs, got, strict=True):
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.skipif(not L._packs_bf16, reason="no oneDNN bf16 here")
def test_packed_weights_under_bf16_autocast_match_its_linear(onednn_on, count_packing):
    torch.manual_seed(0)
    layer = L.Linear(64, 32)
    x = torch.randn(9, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = F.linear(x, layer.weight, layer.bias)
        with torch.no_grad(), L.packed_weights():
            got = [layer(x), layer(x)]
    assert count_packing == [((32, 64), torch.bfloat16, 9)]
    for out in got:
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out, want, rtol=1e-2, atol=1e-2)


@needs_onednn
def test_weights_are_not_packed_with_gradients_or_the_switch_off(onednn_on, count_packing):
    layer = L.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    with L.packed_weights():
        for _ in range(3):
            layer(x).sum().backward()  # gradients need the plain weight
        assert layer.weight.grad is not None and x.grad is not None
        L.use_onednn(False)
        with torch.no_grad():
            for _ in range(3):
                layer(x)
    assert count_packing == []


@needs_onednn
def test_nested_scopes_keep_packed_weights_until_the_outermost_closes(onednn_on, count_packing):
    layer = L.Linear(16, 8)
    x = torch.randn(4, 16)
    with torch.no_grad(), L.packed_weights():
        with L.packed_weights():
            layer(x), layer(x)
        layer(x)
        assert len(L._scopes.packed) == 1
    assert count_packing == [((8, 16), torch.float32, 4)]
    assert not L._scopes.packed and L._scopes.depth == 0


@needs_onednn
def test_a_dtype_mismatch_still_raises(onednn_on):
    layer = L.Linear(16, 8)
    with torch.no_grad(), L.packed_weights():
        for _ in range(3):  # the second call would be the first to pack
            with pytest.raises(RuntimeError):
                layer(torch.randn(4, 16, dtype=torch.bfloat16))


@needs_onednn
def test_stacked_projections_are_never_packed(onednn_on, count_packing):
    # Q, K and V's stacked weight is a new tensor at every call: packing one would cost a
    # reorder, keep it alive for the scope, and never pay off.
    from attnlab.models.attention import MultiHeadAttention

    layer = MultiHeadAttention(32, 4, 8, 8, 0.0).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad(), L.packed_weights():
        for _ in range(4):
            layer(x)
    assert count_packing == [((32, 32), torch.float32, 10)]  # W^O alone, from its second call


@needs_onednn
def test_beam_search_with_packed_weights_finds_the_same_hypotheses(onednn_on, count_packing):
    from attnlab.decoding import beam_search
    from tests.test_transformer import padded_batch, tiny

    model = tiny()
    src, src_pad = padded_batch([9, 6, 4, 7])
    kw = dict(bos_id=1, eos_id=2, beam_size=3, nbest=3, max_len_a=1.0, max_len_b=4)
    packed = beam_search(model, src, src_pad, **kw)
    assert count_packing  # the decoder's weights, called at every step, were packed ...
    assert all(rows <= 4 * 3 for _, _, rows in count_packing)  # ... not the encoder's (26 rows)
    count_packing.clear()
    L.use_onednn(False)
    plain = beam_search(model, src, src_pad, **kw)
    assert count_packing == []
    for ours, theirs in zip(packed, plain, strict=True):
        assert [h.tokens for h in ours] == [h.tokens for h in theirs]
        assert [h.log_prob for h in ours] == pytest.approx([h.log_prob for h in theirs], abs=1e-4)


@needs_onednn
@pytest.mark.parametrize(
    "vendor, fp32", [("AuthenticAMD", True), ("GenuineIntel", False), ("", False)]
)
def test_auto_sends_fp32_through_onednn_on_amd_only_and_packs_a_search_everywhere(
    onednn_on, count_packing, monkeypatch, vendor, fp32
):
    monkeypatch.setattr(L, "cpu_vendor", lambda: vendor)
    assert L.use_onednn("auto") is fp32 and L.onednn_mode() == "auto"
    calls = []
    real = L._linear_pointwise
    monkeypatch.setattr(L, "_linear_pointwise", lambda *a: calls.append(a[0].dtype) or real(*a))
    layer = L.Linear(16, 8)
    x = torch.randn(4, 16)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert calls == ([torch.float32] if fp32 else [])  # training, an encoder: by vendor
    calls.clear()
    with torch.no_grad(), L.packed_weights():  # a search: packed from the second call, anywhere
        for _ in range(2):
            torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    assert calls == ([torch.float32] * 2 if fp32 else [torch.float32])
    assert count_packing == [((8, 16), torch.float32, 4)]
    if L._packs_bf16:  # a search's bf16 weights are packed whichever way fp32 goes
        count_packing.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad(), L.packed_weights():
            layer(x), layer(x)
        assert count_packing == [((8, 16), torch.bfloat16, 4)]


def test_a_bad_mode_names_the_config_key():
    from attnlab.config_errors import ConfigError

    with pytest.raises(ConfigError, match="onednn_linear: must be true, false or auto, got 'on'"):
        L.use_onednn("on")


@needs_onednn
@pytest.mark.parametrize("bf16", [False, True])
def test_relu_fused_into_a_packed_matmul_gives_f_relu_of_f_linear(onednn_on, count_packing, bf16):
    if bf16 and not L._packs_bf16:
        pytest.skip("no oneDNN bf16 here")
    torch.manual_seed(0)
    layer = L.Linear(32, 64)
    x = torch.randn(6, 1, 32)
    activations = []
    real = L._linear_pointwise

    def spying(*args):
        activations.append(args[3])
        return real(*args)

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        want = F.relu(F.linear(x, layer.weight, layer.bias))
        with torch.no_grad(), L.packed_weights(), pytest.MonkeyPatch.context() as patch:
            patch.setattr(L, "_linear_pointwise", spying)
            got = [layer.forward_relu(x) for _ in range(3)]
    assert activations[-2:] == ["relu", "relu"]  # packed from the second call, ReLU fused
    tolerance = 1e-2 if bf16 else 1e-5
    for out in got:
        assert out.dtype == want.dtype and (out >= 0).all()
        torch.testing.assert_close(out, want, rtol=tolerance, atol=tolerance)


def test_forward_relu_outside_a_scope_and_with_hooks_is_the_plain_call():
    layer = L.Linear(8, 16)
    x = torch.randn(5, 8, requires_grad=True)
    out = layer.forward_relu(x)
    torch.testing.assert_close(out, F.relu(layer(x)))
    out.sum().backward()  # and gradients flow as through F.relu
    assert x.grad is not None
    seen = []
    layer.register_forward_hook(lambda *_: seen.append(True))
    with torch.no_grad(), L.packed_weights():
        layer.forward_relu(x), layer.forward_relu(x)
    assert seen == [True, True]
