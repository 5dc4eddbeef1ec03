"""attnlab: attention-based sequence-to-sequence research on Lightning + Hydra."""

__version__ = "0.1.0"
