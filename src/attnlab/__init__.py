"""attnlab: attention-based sequence-to-sequence research on Lightning + Hydra."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from attnlab.inference import Predictor


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """Load a trained model from a checkpoint: ``attnlab.load("last.ckpt").predict([...])``."""
    from attnlab.inference import load as load_predictor  # torch only when it is needed

    return load_predictor(path, device=device)
