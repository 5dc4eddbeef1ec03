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
    was = L.onednn_enabled()
    L.use_onednn(True)
    yield
    L.use_onednn(was)


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
def test_output_and_gradients_match_f_linear(onednn_on, bias, shape):
    torch.manual_seed(0)
    layer = L.Linear(48, 24, bias=bias)
    x = torch.randn(*shape)
    ours = _forward_backward(layer, x)
    L.use_onednn(False)
    reference = _forward_backward(layer, x)
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_the_switch_decides_the_path(onednn_on, monkeypatch):
    calls = []
    real = L._linear_pointwise

    def counting(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(L, "_linear_pointwise", counting)
    layer = L.Linear(16, 8)
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).sum().backward()
    assert len(calls) == 2  # the forward and the input gradient
    L.use_onednn(False)
    layer(x).sum().backward()
    assert len(calls) == 2


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
    was = L.onednn_enabled()
    monkeypatch.setattr(L, "onednn_available", lambda: False)
    try:
        assert L.use_onednn(True) is False
        assert L.Linear(4, 2)(torch.randn(3, 4)).shape == (3, 2)
    finally:
        monkeypatch.undo()
        L.use_onednn(was)


@needs_onednn
def test_a_transformer_training_step_is_the_same_on_both_paths(onednn_on):
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
