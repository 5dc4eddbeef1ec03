"""Dot-product attention of a step-by-step decoder over a fixed memory, for teacher forcing:
the gradients of the memory and its keys are summed over the steps by one matmul each.

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
