import pytest
import torch

from attnlab import native
from attnlab.models import dropout as D
from attnlab.models.dropout import LEVELS, dropout, keep_mask


@pytest.fixture(params=["native", "torch"])
def mask_source(request, monkeypatch):
    """Both CPU paths: Philox bits from the native kernel, and torch's generator."""
    if request.param == "native" and not native.available():
        pytest.skip("no C compiler: no native kernels")
    if request.param == "torch":
        monkeypatch.setattr(D.native, "dropout_applies", lambda x: False)
    return request.param


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_and_expectation_match_p(p, mask_source):
    torch.manual_seed(0)
    n = 1_000_000
    out = dropout(torch.ones(n), p, training=True)
    kept = (out != 0).double().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept - (1 - p)) < 5 * sigma + 1 / LEVELS
    assert abs(out.double().mean().item() - 1.0) < 5 * sigma / (1 - p)  # scaled by 1/keep


def test_the_four_decisions_drawn_from_one_word_are_independent():
    torch.manual_seed(0)
    # p = 0.3: the threshold is not 0, so more than the slices' sign bits decide.
    mask, _ = keep_mask(torch.Size([400_000]), 0.3, torch.device("cpu"))
    words = mask.view(-1, 4).double()  # the four slices of each 64-bit draw
    corr = torch.corrcoef(words.T)
    off_diagonal = corr[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.016  # 5 sigma for 100,000 pairs


@pytest.mark.skipif(not native.available(), reason="no C compiler: no native kernels")
def test_the_eight_decisions_drawn_from_one_philox_block_are_independent():
    torch.manual_seed(0)
    # Element o of a 2,048-element chunk takes slice o // 256 of block o % 256: the eight
    # elements 256 apart share a block; neighbours come from neighbouring counters.
    kept = (dropout(torch.ones(2048 * 100), 0.3, training=True) != 0).double().view(100, 8, 256)
    slices = kept.permute(1, 0, 2).reshape(8, -1)  # [slice, 25,600 blocks]
    off_diagonal = torch.corrcoef(slices)[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.032  # 5 sigma for 25,600 pairs
    neighbours = torch.corrcoef(
        torch.stack([kept[..., :-1].reshape(-1), kept[..., 1:].reshape(-1)])
    )
    assert neighbours[0, 1].abs() < 0.011  # 5 sigma for 204,000 pairs


def test_the_gradient_is_the_same_mask_and_scale(mask_source):
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)  # an element count not divisible by 4
    out = dropout(x, 0.2, training=True)
    out.backward(torch.ones_like(out))
    kept = out != 0
    scale = 1 / (1 - round(0.2 * LEVELS) / LEVELS)
    torch.testing.assert_close(out[kept], x[kept] * scale)
    torch.testing.assert_close(x.grad, kept.float() * scale)


@pytest.mark.skipif(not native.available(), reason="no C compiler: no native kernels")
def test_bf16_drops_the_same_elements_forward_and_backward_and_double_backward_works():
    torch.manual_seed(2)
    x = (torch.rand(3000) + 0.5).bfloat16().requires_grad_()  # no zeros: kept <=> nonzero
    out = dropout(x, 0.25, training=True)
    assert out.dtype == torch.bfloat16
    upstream = torch.ones_like(out, requires_grad=True)
    (grad,) = torch.autograd.grad(out, x, upstream, create_graph=True)
    assert torch.equal(grad != 0, out != 0)
    # The gradient is dropout again, under the same key: so is its own gradient.
    (again,) = torch.autograd.grad(grad.float().sum(), upstream)
    assert torch.equal(again, grad)


@pytest.mark.skipif(not native.available(), reason="no C compiler: no native kernels")
def test_masks_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    x = torch.randn(50_001)
    try:
        torch.manual_seed(4)
        torch.set_num_threads(1)
        one = dropout(x, 0.1, training=True)
        torch.manual_seed(4)
        torch.set_num_threads(max(threads, 2))
        assert torch.equal(dropout(x, 0.1, training=True), one)
    finally:
        torch.set_num_threads(threads)


def test_masks_follow_the_seed_and_eval_is_the_identity(mask_source):
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, training=True), first)
    assert not torch.equal(dropout(x, 0.1, training=True), first)
    assert dropout(x, 0.1, training=False) is x


def test_fake_tensors_take_the_torch_path():
    # FakeTensorMode (shape propagation, export) has no data for the native kernel to read.
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        x = mode.from_tensor(torch.ones(64, 8))
        out = dropout(x, 0.1, training=True)
    assert out.shape == (64, 8)
