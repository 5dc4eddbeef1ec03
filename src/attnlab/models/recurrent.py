"""Running ``nn.LSTM`` under CPU bf16 autocast where oneDNN has no bf16 LSTM.

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
from torch import nn
from torch.nn.utils.rnn import PackedSequence

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
