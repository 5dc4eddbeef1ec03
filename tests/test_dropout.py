import pytest
import torch

from attnlab.models.dropout import LEVELS, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_and_expectation_match_p(p):
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


def test_the_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)  # an element count not divisible by 4
    out = dropout(x, 0.2, training=True)
    out.backward(torch.ones_like(out))
    kept = out != 0
    scale = 1 / (1 - round(0.2 * LEVELS) / LEVELS)
    torch.testing.assert_close(out[kept], x[kept] * scale)
    torch.testing.assert_close(x.grad, kept.float() * scale)


def test_masks_follow_the_seed_and_eval_is_the_identity():
    x = torch.ones(1000)
    torch.manual_seed(3)
    first = dropout(x, 0.1, training=True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.1, training=True), first)
    assert not torch.equal(dropout(x, 0.1, training=True), first)
    assert dropout(x, 0.1, training=False) is x
