"""Label-smoothed cross entropy (Szegedy et al. 2016; Vaswani et al. 2017, §5.4), optionally
joined with a CTC loss on the encoder (hybrid CTC/attention, Watanabe et al. 2017)."""

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

    def __init__(
        self, label_smoothing: float = 0.1, ignore_index: int = 0, ctc_weight: float = 0.0
    ):
        super().__init__()
        require(0.0 <= ctc_weight <= 1.0, "ctc_weight", f"must be in [0, 1], got {ctc_weight}")
        self.ctc_weight = ctc_weight
        require(
            0.0 <= label_smoothing < 1.0,
            "label_smoothing",
            f"must be in [0, 1), got {label_smoothing}",
        )
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        ctc: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss sum, attention NLL sum) over tokens that are not ``ignore_index``.

        With ``ctc_weight`` > 0, ``ctc`` is the encoder's CTC ``(log_probs [B, S, V], lengths
        [B])`` and the loss is ``(1 - w) * attention + w * CTC`` (ESPnet's ``mtlalpha``); the
        CTC targets are ``target`` without its final eos.
        """
        loss, nll = self._attention_loss(logits, target)
        if self.ctc_weight == 0.0:
            return loss, nll
        if ctc is None:
            raise ValueError("criterion.ctc_weight > 0 needs a model with a CTC head")
        return (1.0 - self.ctc_weight) * loss + self.ctc_weight * self._ctc_loss(ctc, target), nll

    def _ctc_loss(
        self, ctc: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        log_probs, input_lengths = ctc
        target_lengths = (target != self.ignore_index).sum(1) - 1  # without eos
        # zero_infinity: an utterance too short for its transcript adds nothing, not inf.
        return F.ctc_loss(
            log_probs.transpose(0, 1),
            target,
            input_lengths,
            target_lengths,
            blank=self.ignore_index,
            reduction="sum",
            zero_infinity=True,
        )

    def _attention_loss(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
