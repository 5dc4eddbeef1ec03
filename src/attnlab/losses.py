"""Label-smoothed cross entropy (Szegedy et al. 2016; Vaswani et al. 2017, §5.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.config_errors import require


class LabelSmoothedCrossEntropy(nn.Module):
    """Sums over non-padding target tokens; also returns the plain NLL sum for perplexity.

    With smoothing ε the target distribution puts 1-ε on the reference token and spreads ε
    uniformly over the vocabulary, as ``F.cross_entropy(label_smoothing=ε)`` defines it.
    """

    def __init__(self, label_smoothing: float = 0.1, ignore_index: int = 0):
        super().__init__()
        require(
            0.0 <= label_smoothing < 1.0,
            "label_smoothing",
            f"must be in [0, 1), got {label_smoothing}",
        )
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (smoothed loss sum, NLL sum) over tokens that are not ``ignore_index``."""
        # One log-softmax serves both terms: loss = (1-ε)·NLL + ε·mean_v(-log p_v), exactly
        # F.cross_entropy(label_smoothing=ε), without computing the softmax twice.
        lprobs = F.log_softmax(logits.reshape(-1, logits.size(-1)).float(), dim=-1)
        target = target.reshape(-1)
        keep = (target != self.ignore_index).to(lprobs.dtype)
        nll = -(lprobs.gather(1, target[:, None]).squeeze(1) * keep).sum()
        if self.label_smoothing == 0.0:
            return nll, nll.detach()
        uniform = -(lprobs.mean(dim=-1) * keep).sum()
        loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        return loss, nll.detach()
