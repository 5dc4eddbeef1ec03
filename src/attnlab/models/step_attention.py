"""Attention of a step-by-step decoder over a fixed memory, for teacher forcing: the gradients
of the memory and its keys summed over the steps once, not step by step (``StepAttention``,
dot-product scores), and additive scores by native kernels (``AdditiveStepScores``).

An RNN decoder attends to the same encoder memory ``M [B, S, H]`` and keys ``K [B, S, H]`` at
every step. Through autograd each step's backward makes two ``[B, S, H]`` outer products
(``a_t ⊗ ∂c_t`` for the memory, ``∂s_t ⊗ q_t`` for the keys) and adds each into a running sum:
at the bench's batches, five passes over 8 MB per step. Here each step's backward keeps only
its ``[B, S]`` and ``[B, H]`` factors, and the sums are taken once, after the last step's
backward, as ``A^T ∂C`` and ``∂S^T Q``: two ``[B, S, T] @ [B, T, H]`` matmuls.

Autograd runs a node's backward only after every consumer of its output has run theirs. Each
step therefore takes a scalar ``order`` from the node that collects the factors, so that node
runs last. Only fp32 / fp64 without autocast and without ``torch.compile`` (the steps share a
Python list); elsewhere the decoder attends through its ``GlobalAttention`` as usual. The
backward is once-differentiable: a second derivative through it raises an error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from attnlab import native
from attnlab.models.attention import attend
from attnlab.models.linear import matmul_dtype


class StepAttention:
    """Scores ``s_t = K q_t``, alignment ``a_t = softmax(s_t)`` (padding masked) and context
    ``c_t = a_t M``, for each step's query ``q_t [B, H]`` in turn; the same values as
    ``GlobalAttention`` with score ``dot`` (``keys`` the memory) or ``general`` (``keys`` the
    memory projected by ``W_a``)."""

    def __init__(self, memory: torch.Tensor, keys: torch.Tensor, pad_mask: torch.Tensor):
        self.memory, self.keys, self.pad_mask = memory.detach(), keys.detach(), pad_mask
        # The steps' factors, shared by the nodes through a plain list: a node holding this
        # object, which holds ``order``, would make a reference cycle that keeps the graph alive.
        self.factors: list[tuple[torch.Tensor, ...]] = []
        self.order = _SumOverSteps.apply(memory, keys, self.factors)

    @staticmethod
    def applies(memory: torch.Tensor) -> bool:
        return (
            torch.is_grad_enabled()
            and memory.requires_grad
            and memory.dtype in (torch.float32, torch.float64)
            and matmul_dtype(memory.device, memory.dtype) == memory.dtype  # no autocast
            and not torch.compiler.is_compiling()
        )

    def __call__(self, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context ``[B, H]`` and alignment ``[B, S]`` of one step."""
        return _Step.apply(query, self.order, self.memory, self.keys, self.pad_mask, self.factors)


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        query: torch.Tensor,
        order: torch.Tensor,
        memory: torch.Tensor,
        keys: torch.Tensor,
        pad_mask: torch.Tensor,
        factors: list,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        context, weights = attend(torch.bmm(keys, query[:, :, None]).squeeze(-1), memory, pad_mask)
        ctx.memory, ctx.keys, ctx.factors = memory, keys, factors
        ctx.sum_node = order.grad_fn
        ctx.save_for_backward(query, weights)
        return context, weights

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_context: torch.Tensor, grad_weights: torch.Tensor) -> tuple:
        query, weights = ctx.saved_tensors
        grad_weights = grad_weights + torch.bmm(ctx.memory, grad_context[:, :, None]).squeeze(-1)
        grad_scores = weights * (grad_weights - (weights * grad_weights).sum(-1, keepdim=True))
        grad_query = torch.bmm(grad_scores[:, None, :], ctx.keys).squeeze(1)
        # Kept only if this pass runs the summing node: a pass that stops short of the memory
        # (``backward(inputs=...)``, ``autograd.grad`` of decoder weights) would leave factors
        # for the next pass to sum twice. Detached: a saved tensor's grad_fn would link the
        # list back into the graph, a cycle through C++ nodes that no collector frees.
        if _runs(ctx.sum_node):
            ctx.factors.append((weights.detach(), grad_context, grad_scores, query.detach()))
        return grad_query, grad_context.new_zeros(()), None, None, None, None


class _SumOverSteps(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, memory: torch.Tensor, keys: torch.Tensor, factors: list) -> torch.Tensor:
        ctx.factors = factors
        return memory.new_zeros(())

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, _: torch.Tensor) -> tuple:
        if not ctx.factors:
            return None, None, None
        weights, grad_context, grad_scores, queries = (
            torch.stack(f, dim=1) for f in zip(*ctx.factors, strict=True)
        )  # [B, T, S], [B, T, H], [B, T, S], [B, T, H]
        ctx.factors.clear()
        # Score "dot" passes the memory as its keys: autograd adds the two gradients.
        return (
            torch.bmm(weights.transpose(1, 2), grad_context),
            torch.bmm(grad_scores.transpose(1, 2), queries),
            None,
        )


def _runs(node: Any) -> bool:
    """Whether the backward pass now running will run ``node``."""
    will_run = getattr(torch._C, "_will_engine_execute_node", None)
    return True if will_run is None else bool(will_run(node))


class AdditiveStepScores:
    """Additive scores ``e_t = v^T tanh(U h + W s_t)`` (Bahdanau's, where ``s_t`` is the previous
    decoder state; Luong's concat) for each teacher-forced step in turn, from the projected keys
    ``U h [B, S, A]`` and each step's projected query ``W s_t [B, A]``, by the native kernels
    (``attnlab/native``): the keys are read once a step and the ``[B, S, A]`` tanh is neither
    written nor kept for the backward, which recomputes it. Each step's backward adds its keys'
    gradient in place into one ``[B, S, A]`` sum, handed to autograd once, after the last
    step's, as ``StepAttention`` does. fp32 on a CPU only."""

    def __init__(self, projected_keys: torch.Tensor):
        self.keys = projected_keys.detach()
        self.sum = _KeyGradientSum()
        self.order = _HandOverKeyGradient.apply(projected_keys, self.sum)

    @staticmethod
    def applies(projected_keys: torch.Tensor) -> bool:
        return (
            torch.is_grad_enabled()
            and projected_keys.requires_grad
            and projected_keys.dtype == torch.float32
            and projected_keys.device.type == "cpu"
            and matmul_dtype(projected_keys.device, projected_keys.dtype) == torch.float32
            and not torch.compiler.is_compiling()
            and native.available()
        )

    def __call__(self, query: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, S]`` of one step's projected query ``[B, A]``; ``v`` holds ``A`` values."""
        return _AdditiveScores.apply(query, v, self.order, self.keys, self.sum)


class _KeyGradientSum:
    """The keys' gradient summed over the steps so far (``None`` before the first)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None

    def buffer(self, like: torch.Tensor) -> torch.Tensor:
        if self.total is None:
            self.total = torch.zeros_like(like, memory_format=torch.contiguous_format)
        return self.total

    def take(self) -> torch.Tensor | None:
        total, self.total = self.total, None
        return total


class _AdditiveScores(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        query: torch.Tensor,
        v: torch.Tensor,
        order: torch.Tensor,
        keys: torch.Tensor,
        key_sum: _KeyGradientSum,
    ) -> torch.Tensor:
        scores = native.additive_scores(keys, query, v)
        if scores is None:
            raise RuntimeError("the native additive-score kernel does not apply to these inputs")
        ctx.keys, ctx.key_sum, ctx.sum_node = keys, key_sum, order.grad_fn
        ctx.v_shape = v.shape
        ctx.save_for_backward(query, v)
        return scores

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_scores: torch.Tensor) -> tuple:
        query, v = ctx.saved_tensors
        # Summed only if this pass runs the node that hands the sum over (see StepAttention).
        grad_keys = ctx.key_sum.buffer(ctx.keys) if _runs(ctx.sum_node) else None
        grads = native.additive_scores_grad(ctx.keys, query, v, grad_scores, grad_keys)
        if grads is None:
            raise RuntimeError("the native additive-score kernel does not apply to these inputs")
        grad_query, grad_v = grads
        return grad_query, grad_v.view(ctx.v_shape), grad_scores.new_zeros(()), None, None


class _HandOverKeyGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, keys: torch.Tensor, key_sum: _KeyGradientSum) -> torch.Tensor:
        ctx.key_sum = key_sum
        return keys.new_zeros(())

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, _: torch.Tensor) -> tuple:
        return ctx.key_sum.take(), None
