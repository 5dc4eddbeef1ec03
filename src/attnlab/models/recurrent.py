"""Running RNNs over padded batches, on the fastest exact path.

:func:`run_padded` runs an encoder RNN over each row's real steps. On a CPU, in training, an
LSTM runs once per distinct length and a GRU over the padded batch, instead of over a packed
sequence (see its docstring).

:func:`run_recurrent` runs ``nn.LSTM`` under CPU bf16 autocast where oneDNN has no bf16 LSTM.

Autocast sends ``nn.LSTM`` to oneDNN in bf16 on a CPU, and on CPUs without AVX-512 (an AVX2
Zen 3, for one) oneDNN has no bf16 LSTM: PyTorch then fails with "could not create a primitive
descriptor for the LSTM forward propagation primitive". There the LSTM runs in fp32, outside
autocast; everything around it stays in bf16. ``nn.GRU`` is not on autocast's bf16 list and
always runs as it is.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from attnlab.models.linear import matmul_dtype


@functools.cache
def cpu_has_bf16_lstm() -> bool:
    """Whether oneDNN runs bf16 on this CPU (PyTorch's own test for its bf16 LSTM path); a torch
    built without oneDNN takes another LSTM path, which this does not concern."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def _fp32(value: Any) -> Any:
    if isinstance(value, PackedSequence):
        return value.float()
    if isinstance(value, tuple):
        return tuple(_fp32(v) for v in value)
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


def run_recurrent(rnn: nn.Module, inputs: Any, hidden: Any = None) -> Any:
    """``rnn(inputs, hidden)``, in fp32 without autocast where the CPU has no bf16 LSTM and
    bf16 autocast is on (see the module docstring)."""
    device = inputs.data.device if isinstance(inputs, PackedSequence) else inputs.device
    if (
        isinstance(rnn, nn.LSTM)
        and device.type == "cpu"
        and matmul_dtype(device, torch.float32) == torch.bfloat16  # CPU bf16 autocast is on
        and not cpu_has_bf16_lstm()
    ):
        with torch.autocast("cpu", enabled=False):
            return rnn(_fp32(inputs), _fp32(hidden))
    return rnn(inputs, hidden)


# The padded GRU computes every padded step too: a batch of mostly padding stays packed (one
# 300-step row among 63 of 10, 4.8% real: 2.1-2.3x slower padded, review_gru_fill.log).
_LEAST_FILL = 0.5


def _has_hooks(rnn: nn.Module) -> bool:
    """The padded GRU calls the GRU function on the module's weights, bypassing its call: a
    module with hooks (old-style weight norm, for one) runs packed, through its call."""
    return bool(rnn._forward_hooks or rnn._forward_pre_hooks)


# One fused LSTM call per distinct length has a fixed cost that a packed run does not: beyond
# about 16 lengths, packed won in every case measured (see run_padded).
_MOST_LENGTHS = 16


def run_padded(
    rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``rnn`` (batch-first) over the first ``lengths[b]`` steps of each row of ``inputs
    [B, S, E]``: its outputs ``[B, S, D]``, zero at padding, and its final states, a tuple of
    ``[layers * dirs, B, H]`` taken at each row's own end.

    Over a packed sequence PyTorch's CPU RNNs step through the batch themselves, and each step's
    slice of the input projection has a backward that zero-fills and adds a tensor the size of
    the whole projection: a cost that grows with length x tokens. So on a CPU, with gradients:

    - an LSTM runs once per distinct length, unpadded, through oneDNN's fused LSTM, when the
      batch has at most 16 distinct lengths. Forward and backward of the Luong encoder (bi-LSTM
      2 x 128), median of 5 on a 2-core Zen 3: 264 rows of 8 lengths up to 31, 589 -> 371 ms;
      16 rows of 16 lengths up to 400, 2,715 -> 839 ms; but 64 rows of 20 lengths up to 40,
      150 -> 165 ms, and 32 rows of 32 lengths, 91 -> 161 ms (``encoder_grouping_probe.log``);
    - a GRU (no oneDNN path; it was slower by length) runs over the padded batch, one layer and
      direction at a time (``_run_gru_padded``), when at least half the batch is real steps
      and the module has no hooks. The Bahdanau encoder (bi-GRU 512): 264 rows, 1,422 ->
      1,204 ms; 16 rows up to 400 steps, 4,667 -> 1,533 ms (``gru_padded_probe.log``).

    Every way computes the same function. Forward-only runs were as fast or faster packed, and
    CUDA packs natively: they stay packed. Logs in ``outputs/measured/2026-12-07_s24_zen3/``."""
    if not rnn.batch_first:
        raise ValueError("run_padded needs a batch-first RNN (batch_first=True)")
    lengths = lengths.cpu()
    training_on_cpu = inputs.device.type == "cpu" and torch.is_grad_enabled()
    if (
        training_on_cpu
        and isinstance(rnn, nn.GRU)
        and not _has_hooks(rnn)
        and lengths.sum() >= _LEAST_FILL * lengths.numel() * inputs.size(1)
    ):
        return _run_gru_padded(rnn, inputs, lengths)
    distinct = lengths.unique()
    if training_on_cpu and isinstance(rnn, nn.LSTM) and len(distinct) <= _MOST_LENGTHS:
        return _run_by_length(rnn, inputs, lengths, distinct.tolist())
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    outputs, final = run_recurrent(rnn, packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
    return outputs, final if isinstance(final, tuple) else (final,)


def _run_by_length(
    rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor, distinct: list[int]
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    steps = inputs.size(1)
    rows, outputs, finals = [], [], []
    for length in distinct:
        group = (lengths == length).nonzero().squeeze(1).to(inputs.device)
        output, final = run_recurrent(rnn, inputs.index_select(0, group)[:, :length])
        rows.append(group)
        outputs.append(F.pad(output, (0, 0, 0, steps - length)))
        finals.append(final if isinstance(final, tuple) else (final,))
    # One reordering back to the batch's rows, not one scatter per group.
    back = torch.cat(rows).argsort()
    output = torch.cat(outputs).index_select(0, back)
    final = tuple(
        torch.cat(parts, dim=1).index_select(1, back) for parts in zip(*finals, strict=True)
    )
    return output, final


def _run_gru_padded(
    rnn: nn.GRU, inputs: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A GRU over the padded batch, one layer and direction at a time. Padding at a row's end
    never reaches its real steps going forward; going backward, each row's real steps are
    reversed in place first, so its padding stays at the end. A GRU's state is its output, so
    each final state is the output at the row's last real step."""
    batch, steps = inputs.shape[:2]
    position = torch.arange(steps)
    real = position < lengths[:, None]
    # Reverses each row's real steps and leaves its padding where it is; its own inverse.
    reverse = torch.where(real, lengths[:, None] - 1 - position, position).to(inputs.device)
    last = (lengths - 1).to(inputs.device)[:, None, None]
    hidden = inputs.new_zeros(1, batch, rnn.hidden_size)
    directions = ("", "_reverse") if rnn.bidirectional else ("",)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if rnn.bias else 2]
    x, finals = inputs, []
    for layer in range(rnn.num_layers):
        outputs = []
        for suffix in directions:
            weights = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
            flip = (lambda t: t.gather(1, reverse[..., None].expand_as(t))) if suffix else None
            output, _ = torch._VF.gru(
                flip(x) if flip else x, hidden, weights, rnn.bias, 1, 0.0, rnn.training, False, True
            )
            finals.append(output.gather(1, last.expand(-1, 1, output.size(2))).squeeze(1))
            outputs.append(flip(output) if flip else output)
        x = torch.cat(outputs, dim=-1)
        if layer < rnn.num_layers - 1 and rnn.dropout > 0:
            x = F.dropout(x, rnn.dropout, rnn.training)
    return x.masked_fill(~real.to(x.device)[..., None], 0.0), (torch.stack(finals),)
