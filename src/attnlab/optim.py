"""The learning-rate schedule of Vaswani et al. 2017, §5.3.

``lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)``: linear warm-up for ``warmup``
steps, then decay with the inverse square root of the step. Here it is a multiplier on the
optimizer's ``lr``, normalised to 1 at the end of warm-up, so ``optim.lr`` is the peak rate;
``noam_peak_lr(d_model, warmup)`` gives the paper's peak (7.0e-4 for the base model).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from attnlab.config_errors import require

if TYPE_CHECKING:  # torch is imported where a schedule is built, so config code loads fast
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LambdaLR


def noam_peak_lr(d_model: int, warmup_steps: int, scale: float = 1.0) -> float:
    return scale * d_model**-0.5 * warmup_steps**-0.5


def inverse_sqrt_factor(step: int, warmup_steps: int) -> float:
    step = max(step, 1)
    return min(step / warmup_steps, math.sqrt(warmup_steps / step))


def inverse_sqrt_schedule(optimizer: Optimizer, warmup_steps: int = 4000) -> LambdaLR:
    require(warmup_steps > 0, "warmup_steps", f"must be positive, got {warmup_steps}")
    from torch.optim.lr_scheduler import LambdaLR

    # LambdaLR counts from 0 before the first step; the paper's step numbers start at 1.
    return LambdaLR(optimizer, lambda step: inverse_sqrt_factor(step + 1, warmup_steps))
