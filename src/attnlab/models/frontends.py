"""How acoustic feature frames enter an encoder that would otherwise embed token ids.

A front-end maps ``features [B, T, F]`` with ``pad_mask [B, T]`` to ``x [B, T', D]`` with the
subsampled mask ``[B, T']``. Every front-end first normalises the features with global mean and
variance statistics (stored in the model, so a checkpoint carries them) and, in training only,
applies SpecAugment masks. Then:

- ``conv2d``: two 3x3 convolutions of stride 2 (time and frequency subsampled x4), then a linear
  map to the encoder's width: the Transformer front-end of Speech-Transformer (Dong et al. 2018)
  and ESPnet's ``Conv2dSubsampling``.
- ``pyramidal``: pyramidal bidirectional LSTM layers, each concatenating pairs of frames before
  its LSTM (Listen, Attend and Spell, Chan et al. 2016), halving the frame rate per layer: the
  RNN front-end.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.config_errors import ConfigError, require
from attnlab.models.linear import Linear
from attnlab.models.recurrent import run_padded


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B]`` lengths -> ``[B, max_len]`` mask, True at padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class GlobalCMVN(nn.Module):
    """``(x - mean) / std`` with statistics of the training features (set once, then saved)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        require(
            mean.shape == self.mean.shape,
            "model.input_dim",
            f"is {self.mean.numel()} but the features have {mean.numel()} dimensions",
        )
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SpecAugment(nn.Module):
    """Frequency and time masks (Park et al. 2019), in training mode only; masked values are set
    to 0, the mean of the normalised features. Time-mask widths are a fraction of each
    utterance's length, so short utterances are not wiped out."""

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 27,
        time_masks: int = 2,
        time_width: float = 0.05,
    ):
        super().__init__()
        require(freq_masks >= 0, "freq_masks", f"must be >= 0, got {freq_masks}")
        require(time_masks >= 0, "time_masks", f"must be >= 0, got {time_masks}")
        require(freq_width >= 0, "freq_width", f"must be >= 0, got {freq_width}")
        require(0 <= time_width <= 1, "time_width", f"must be in [0, 1], got {time_width}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        batch, frames, dims = x.shape
        keep = torch.ones_like(x, dtype=torch.bool)
        bins = torch.arange(dims, device=x.device)[None, :]
        for _ in range(self.freq_masks):
            width = torch.randint(0, self.freq_width + 1, (batch, 1), device=x.device)
            start = (torch.rand(batch, 1, device=x.device) * (dims - width + 1)).long()
            keep &= ~((bins >= start) & (bins < start + width))[:, None, :]
        steps = torch.arange(frames, device=x.device)[None, :]
        max_width = (lengths.to(x.device).float() * self.time_width).long()[:, None]
        for _ in range(self.time_masks):
            width = (torch.rand(batch, 1, device=x.device) * (max_width + 1)).long()
            room = (lengths.to(x.device)[:, None] - width + 1).clamp_min(1)
            start = (torch.rand(batch, 1, device=x.device) * room).long()
            keep &= ~((steps >= start) & (steps < start + width))[:, :, None]
        return x * keep


class Conv2dSubsampling(nn.Module):
    """Two stride-2 3x3 convolutions with ReLU, then a linear map: ``T -> ((T-1)//2 - 1)//2``."""

    min_frames = 7  # the shortest input that leaves one output frame

    def __init__(self, input_dim: int, output_dim: int, channels: int = 256):
        super().__init__()
        require(channels >= 1, "frontend.channels", f"must be >= 1, got {channels}")
        require(input_dim >= 7, "input_dim", f"needs at least 7 feature bins, got {input_dim}")
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2),
            nn.ReLU(),
        )
        self.out = Linear(channels * (((input_dim - 1) // 2 - 1) // 2), output_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x[:, None])  # [B, C, T', F']
        batch, channels, frames, bins = y.shape
        y = self.out(y.transpose(1, 2).reshape(batch, frames, channels * bins))
        return y, ((lengths - 1) // 2 - 1) // 2


class PyramidalLSTM(nn.Module):
    """Pyramidal BLSTM (Chan et al. 2016): each layer stacks pairs of frames, then runs a
    bidirectional LSTM; ``layers`` layers divide the frame rate by ``2 ** layers``."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_size: int = 256,
        layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        require(layers >= 1, "frontend.layers", f"must be >= 1, got {layers}")
        require(hidden_size >= 1, "frontend.hidden_size", f"must be >= 1, got {hidden_size}")
        self.min_frames = 2**layers
        sizes = [input_dim] + [2 * hidden_size] * layers
        self.lstms = nn.ModuleList(
            nn.LSTM(2 * sizes[i], hidden_size, batch_first=True, bidirectional=True)
            for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.out = Linear(2 * hidden_size, output_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for lstm in self.lstms:
            frames = x.size(1) // 2
            x = x[:, : 2 * frames].reshape(x.size(0), frames, 2 * x.size(2))
            lengths = (lengths // 2).clamp_min(1)
            x = self.dropout(run_padded(lstm, x, lengths)[0])
        return self.out(x), lengths


class FeatureFrontend(nn.Module):
    """CMVN -> SpecAugment (training only) -> subsampling to the encoder's input width."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        kind: str = "conv2d",
        spec_augment: dict | None = None,
        **options: object,
    ):
        super().__init__()
        require(input_dim >= 1, "input_dim", f"must be >= 1, got {input_dim}")
        kinds = {"conv2d": Conv2dSubsampling, "pyramidal": PyramidalLSTM}
        require(kind in kinds, "frontend.kind", f"must be one of {sorted(kinds)}, got {kind!r}")
        self.cmvn = GlobalCMVN(input_dim)
        self.spec_augment = SpecAugment(**spec_augment) if spec_augment else None
        try:
            self.subsample = kinds[kind](input_dim, output_dim, **options)
        except TypeError as error:
            raise ConfigError("frontend", f"(kind={kind}): {error}") from None

    def forward(
        self, features: torch.Tensor, pad_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = (~pad_mask).sum(1)
        x = self.cmvn(features).masked_fill(pad_mask[:, :, None], 0.0)
        if self.spec_augment is not None:
            x = self.spec_augment(x, lengths)
        shortfall = self.subsample.min_frames - x.size(1)
        if shortfall > 0:  # a very short batch: pad so at least one frame comes out
            x = nn.functional.pad(x, (0, 0, 0, shortfall))
        lengths = lengths.clamp_min(self.subsample.min_frames)
        x, lengths = self.subsample(x, lengths)
        lengths = lengths.clamp(1, x.size(1))
        return x, lengths_to_mask(lengths, x.size(1))


def set_feature_statistics(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Give the model's CMVN the training features' statistics."""
    layers = [m for m in model.modules() if isinstance(m, GlobalCMVN)]
    require(
        bool(layers),
        "model.input_dim",
        "the data gives feature frames but the model reads token ids; set model.input_dim",
    )
    for layer in layers:
        layer.set_statistics(mean, std)


def build_frontend(input_dim: int | None, output_dim: int, frontend: dict | None):
    """The front-end for feature inputs, or None when the model reads token ids."""
    if input_dim is None:
        return None
    return FeatureFrontend(input_dim, output_dim, **dict(frontend or {}))


class CTCHead(nn.Module):
    """A linear CTC output layer on the encoder (Graves et al. 2006); the blank is id 0 (pad),
    which never occurs in a target, as in ESPnet."""

    blank = 0

    def __init__(self, input_dim: int, vocab_size: int):
        super().__init__()
        self.proj = Linear(input_dim, vocab_size)

    def forward(
        self, memory: torch.Tensor, pad_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs ``[B, S, V]`` (float32) and the lengths ``[B]``."""
        return self.proj(memory).float().log_softmax(-1), (~pad_mask).sum(1)
