"""Training FLOPs as 6 x weights x tokens (Kaplan et al. 2020), counted per model family.

Each source token passes through the encoder's weight matrices, each target token through
the decoder's and the output projection; embedding lookups, biases and norms are not counted,
nor are the attention scores over positions (small at these lengths). The same rule for every
family is what lets learning curves be compared against compute.
"""

from __future__ import annotations

from torch import nn


def weights_per_token(model: nn.Module) -> tuple[int, int]:
    """``(per source token, per target token)`` counts of multiply-accumulate weights."""
    source = target = 0
    named = dict(model.named_parameters())  # a tied weight appears once, under its first name
    for name, parameter in named.items():
        if parameter.dim() < 2 or "embed" in name:
            continue
        if name.startswith("encoder"):
            source += parameter.numel()
        else:
            target += parameter.numel()
    projection = getattr(model, "output_proj", None)
    if projection is not None and "output_proj.weight" not in named:  # tied to the embedding
        target += projection.weight.numel()
    return source, target


def training_flops(source_tokens: float, target_tokens: float, per_token: tuple[int, int]) -> float:
    """Forward + backward FLOPs of training on that many (non-padding) tokens."""
    return 6.0 * (per_token[0] * source_tokens + per_token[1] * target_tokens)
