import pytest
import torch
import torch.nn.functional as F

from attnlab import native
from attnlab.losses import LabelSmoothedCrossEntropy

PAD = 0


@pytest.fixture(params=["native", "pytorch"])
def path(request):
    """Each loss test runs on both paths: the native kernels (where a C compiler built them)
    and PyTorch's log_softmax."""
    if request.param == "native" and not native.available():
        pytest.skip("no C compiler: the native kernels could not be built")
    native.use_native_kernels(request.param == "native")
    yield request.param
    native.use_native_kernels(True)


def logits_and_target(dtype=torch.float32, vocab=50):
    torch.manual_seed(0)
    logits = (3 * torch.randn(4, 7, vocab)).to(dtype).requires_grad_()
    target = torch.randint(1, vocab, (4, 7))
    target[0, 5:] = PAD  # padding rows contribute nothing
    target[2, 3:] = PAD
    return logits, target


@pytest.mark.parametrize("vocab", [50, 8003])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_loss_and_gradient_equal_torch_cross_entropy(path, epsilon, vocab):
    logits, target = logits_and_target(vocab=vocab)
    loss, nll = LabelSmoothedCrossEntropy(epsilon, ignore_index=PAD)(logits, target)
    (grad,) = torch.autograd.grad(loss * 0.5, logits)

    flat, flat_target = logits.view(-1, vocab), target.view(-1)
    expected = F.cross_entropy(
        flat, flat_target, ignore_index=PAD, label_smoothing=epsilon, reduction="sum"
    )
    (expected_grad,) = torch.autograd.grad(expected * 0.5, logits)
    expected_nll = F.cross_entropy(flat, flat_target, ignore_index=PAD, reduction="sum")

    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, expected_nll)
    torch.testing.assert_close(grad, expected_grad)
    assert not nll.requires_grad and grad[0, 5:].abs().sum() == 0


def test_bf16_logits_get_a_bf16_gradient_computed_in_fp32(path):
    logits, target = logits_and_target(torch.bfloat16)
    criterion = LabelSmoothedCrossEntropy(0.1, ignore_index=PAD)
    loss, _ = criterion(logits, target)
    loss.backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16

    as_fp32 = logits.detach().float().requires_grad_()  # the same values, in fp32
    expected, _ = criterion(as_fp32, target)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits.grad, as_fp32.grad.bfloat16())


def test_a_second_backward_is_refused_not_silently_wrong(path):
    logits, target = logits_and_target()
    loss, _ = LabelSmoothedCrossEntropy(0.1, ignore_index=PAD)(logits, target)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="back-propagated twice"):
        loss.backward()


def test_a_target_outside_the_vocabulary_is_an_error_on_both_paths(path):
    logits, target = logits_and_target()
    target[1, 2] = 50  # one past the last token
    with pytest.raises((IndexError, RuntimeError), match="out of bounds|index"):
        LabelSmoothedCrossEntropy(0.1, ignore_index=PAD)(logits, target)


def test_the_native_path_is_the_one_taken_where_the_kernels_are_built(monkeypatch):
    if not native.available():
        pytest.skip("no C compiler: the native kernels could not be built")
    calls = []
    kernel = native.smoothed_cross_entropy
    monkeypatch.setattr(native, "smoothed_cross_entropy", lambda *a: calls.append(1) or kernel(*a))
    logits, target = logits_and_target()
    loss, _ = LabelSmoothedCrossEntropy(0.1, ignore_index=PAD)(logits, target)
    assert (
        calls
        and native.smoothed_cross_entropy(logits.detach().view(-1, 50), target.view(-1), 0.1, PAD)
        is not None
    )


def test_an_ignore_index_outside_the_vocabulary_works_on_both_paths(path):
    logits, target = logits_and_target()
    target[target == PAD] = -100  # F.cross_entropy's default
    loss, nll = LabelSmoothedCrossEntropy(0.1, ignore_index=-100)(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    flat, flat_target = logits.view(-1, 50), target.view(-1)
    expected = F.cross_entropy(flat, flat_target, label_smoothing=0.1, reduction="sum")
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_a_batch_of_only_ignored_tokens_gets_nan_gradients_not_a_crash(path):
    """0 / 0 tokens: the upstream gradient is NaN, and reaches the ignored rows (0 * NaN), whose
    target may lie anywhere (-100)."""
    logits = torch.randn(3, 200, requires_grad=True)
    target = torch.full((3,), -100)
    loss, _ = LabelSmoothedCrossEntropy(0.1, ignore_index=-100)(logits, target)
    (loss / (target != -100).sum()).backward()
    assert loss.item() == 0 and torch.isnan(logits.grad).all()


def test_switching_the_kernels_off_between_forward_and_backward_changes_nothing():
    if not native.available():
        pytest.skip("no C compiler: the native kernels could not be built")
    logits, target = logits_and_target()
    target[target == PAD] = -100
    criterion = LabelSmoothedCrossEntropy(0.1, ignore_index=-100)
    expected, _ = criterion(logits, target)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    loss, _ = criterion(logits, target)  # native forward
    native.use_native_kernels(False)
    try:
        (grad,) = torch.autograd.grad(loss, logits)  # PyTorch backward from the saved logits
    finally:
        native.use_native_kernels(True)
    torch.testing.assert_close(grad, expected_grad)
