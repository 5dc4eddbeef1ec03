"""Speech recognition data: audio (or precomputed features) -> text.

Two readers (in :mod:`attnlab.data.speech_inputs`, which imports no torch) produce the same
thing, a list of :class:`~attnlab.data.tasks.Example` whose ``source`` names the input (an
audio file, or a feature file / Kaldi ``ark:`` location) and whose ``target`` is the transcript:

- ``AudioManifest``: a TSV manifest per split (id, audio path, text), as AN4 ships.
- ``FeatureManifest``: a TSV manifest of id, features, text for users of Kaldi, ESPnet or
  lhotse features (``.npy`` files, ``ark:`` locations or ``.scp`` lines read with kaldiio).

:class:`SpeechDataModule` turns them into batches: 80-dim log-mel filterbanks computed once
through kaldi-native-fbank (Kaldi-compatible) and cached under a hash of the settings,
optional speed perturbation of the training audio, character or SentencePiece targets, and
batches sized by frames. Normalisation (global CMVN) and SpecAugment live in the model's
front-end (models/frontends.py), so a checkpoint carries the statistics it was trained with.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnlab.config_errors import ConfigError
from attnlab.data.arguments import SPEECH_TOKENIZER, check_speech_settings
from attnlab.data.datamodule import Batch, Seq2SeqDataModule, TokenizedSplit
from attnlab.data.files import atomic_write_bytes
from attnlab.data.speech_inputs import (  # the readers; configs and checkpoints name them here too
    AudioManifest,  # noqa: F401
    FbankSettings,
    FeatureManifest,  # noqa: F401
)
from attnlab.data.tasks import DataFileError, Example
from attnlab.data.tokenizer import BOS, EOS, PAD, TOKENIZERS

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- features
def compute_fbank(samples: np.ndarray, settings: FbankSettings) -> np.ndarray:
    """Log-mel filterbank features ``[frames, num_mel_bins]`` (float32) of a mono waveform in
    [-1, 1], computed as Kaldi does (16-bit sample scale, povey window, no energy term)."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = settings.sample_rate
    options.frame_opts.frame_length_ms = settings.frame_length_ms
    options.frame_opts.frame_shift_ms = settings.frame_shift_ms
    options.frame_opts.dither = settings.dither
    options.mel_opts.num_bins = settings.num_mel_bins
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(settings.sample_rate, np.asarray(samples, np.float32) * 32768.0)
    fbank.input_finished()
    frames = [fbank.get_frame(i) for i in range(fbank.num_frames_ready)]
    if not frames:
        return np.zeros((0, settings.num_mel_bins), np.float32)
    return np.stack(frames).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int, where: str = "") -> np.ndarray:
    """Mono float32 samples of an audio file; errors name the file (and ``where`` it is listed)."""
    import soundfile

    origin = f" (listed at {where})" if where else ""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"missing audio file {path}{origin}")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile's message says what is wrong with the bytes
        raise DataFileError(f"unreadable audio file {path}{origin}: {error}") from None
    if rate != sample_rate:
        raise DataFileError(
            f"{path}{origin}: sample rate {rate} Hz, but features.sample_rate is {sample_rate}"
        )
    if samples.shape[0] == 0:
        raise DataFileError(f"{path}{origin}: zero-length audio")
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play the audio ``factor`` times faster (tempo and pitch, as Kaldi/ESPnet's ``sox speed``):
    resample to ``1/factor`` times as many samples, with a polyphase anti-aliasing filter."""
    if factor == 1.0:
        return samples
    from scipy.signal import resample_poly

    ratio = Fraction(1 / factor).limit_denominator(100)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def read_feature_file(spec: str, where: str = "") -> np.ndarray:
    """Features ``[frames, dims]`` from a ``.npy`` file or a Kaldi ``ark:``/``scp`` location."""
    origin = f" (listed at {where})" if where else ""
    try:
        if spec.endswith(".npy"):
            array = np.load(spec, allow_pickle=False)
        else:
            import kaldiio

            array = kaldiio.load_mat(spec.removeprefix("ark:"))
    except FileNotFoundError:
        raise DataFileError(f"missing feature file {spec}{origin}") from None
    except Exception as error:
        raise DataFileError(f"unreadable features {spec}{origin}: {error}") from None
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise DataFileError(f"{spec}{origin}: features must be [frames, dims], got {array.shape}")
    return array


# ------------------------------------------------------------------------------ datamodule
class SpeechSplit(TokenizedSplit):
    """Feature matrices and target ids of one split; batches are sized by frames."""

    def lengths(self) -> np.ndarray:
        return np.array([len(f) for f in self.sources])

    def tie_break(self) -> np.ndarray:
        """Among utterances of equal frames, transcripts of similar length side by side."""
        return np.array([len(t) for t in self.targets])

    def collate(self, indices: list[int]) -> Batch:
        batch = len(indices)
        frames = max(len(self.sources[i]) for i in indices)
        dims = self.sources[indices[0]].shape[1]
        tgt_len = max(len(self.targets[i]) for i in indices) + 1
        src = np.zeros((batch, frames, dims), dtype=np.float32)
        src_pad = np.ones((batch, frames), dtype=bool)
        tgt_in = np.full((batch, tgt_len), PAD, dtype=np.int64)
        tgt_out = np.full((batch, tgt_len), PAD, dtype=np.int64)
        for row, i in enumerate(indices):
            f, t = self.sources[i], self.targets[i]
            src[row, : len(f)] = f
            src_pad[row, : len(f)] = False
            tgt_in[row, 0] = BOS
            tgt_in[row, 1 : len(t) + 1] = t
            tgt_out[row, : len(t)] = t
            tgt_out[row, len(t)] = EOS
        return Batch(
            torch.from_numpy(src),
            torch.from_numpy(src_pad),
            torch.from_numpy(tgt_in),
            torch.from_numpy(tgt_out),
            torch.tensor(indices),
        )


class SpeechDataModule(Seq2SeqDataModule):
    """Speech -> text. ``max_tokens``/``eval_max_tokens`` count padded frames per batch and
    ``max_source_positions`` is the longest utterance kept, in frames."""

    gives_features = True

    def __init__(
        self,
        task: Any,
        features: dict | None = None,
        feature_dim: int = 80,
        speed_perturb: Sequence[float] = (),
        tokenizer: dict | None = None,
        **kwargs: Any,
    ):
        self.settings = check_speech_settings(
            task=task, features=features, feature_dim=feature_dim, speed_perturb=speed_perturb
        )
        super().__init__(task, tokenizer=tokenizer or dict(SPEECH_TOKENIZER), **kwargs)
        self.feature_dim = feature_dim
        self.speed_factors = tuple(float(f) for f in speed_perturb) or (1.0,)
        self._statistics: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- targets ----------------------------------------------------------------------------------
    def prepare_tokenizer(self):
        """Characters or SentencePiece, trained on the training transcripts only."""
        if self.tokenizer is None:
            cfg = {k: v for k, v in self.tokenizer_cfg.items() if k != "kind"}
            texts = [e.target for e in self._read("train")]
            self.tokenizer = TOKENIZERS[self.tokenizer_cfg["kind"]].train_or_load(
                texts, cache_dir=self.cache_dir, **cfg
            )
        return self.tokenizer

    # -- features ---------------------------------------------------------------------------------
    def _tokenize(self, split: str) -> SpeechSplit:
        tokenizer = self.prepare_tokenizer()
        examples = self._read(split)
        factors = self.speed_factors if split == "train" else (1.0,)
        targets = [
            np.asarray(ids, dtype=np.int32)
            for ids in tokenizer.encode_batch([e.target for e in examples])
        ]
        for example, target in zip(examples, targets, strict=True):
            if len(target) == 0:  # before any audio is decoded
                raise DataFileError(f"{_where(example)}: empty transcript")
        all_examples, all_features, all_targets = [], [], []
        for factor in factors:
            all_features += self._features(split, examples, factor)
            all_examples += examples
            all_targets += targets
        return self._limit_lengths(SpeechSplit(split, all_examples, all_features, all_targets))

    def _features(self, split: str, examples: list[Example], factor: float) -> list[np.ndarray]:
        settings = json.dumps({**asdict(self.settings), "speed": factor, "v": 1}, sort_keys=True)
        key = hashlib.sha256(
            f"{self.task.fingerprint(split)}|{len(examples)}|{self.task.kind}|{settings}".encode()
        ).hexdigest()[:20]
        path = self.cache_dir / f"feats-{self.task.name}-{split}-{key}.npz"
        if path.exists():
            try:
                with np.load(path) as cached:
                    features = np.split(cached["features"], cached["offsets"][1:-1])
                if len(features) == len(examples):
                    return features
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass
            log.warning("feature cache %s is unreadable; rebuilding it", path)
        features = [self._compute(example, factor) for example in examples]
        buffer = io.BytesIO()
        offsets = np.concatenate([[0], np.cumsum([len(f) for f in features])]).astype(np.int64)
        stacked = np.concatenate(features) if features else np.zeros((0, self.feature_dim))
        np.savez(buffer, features=stacked.astype(np.float32), offsets=offsets)
        atomic_write_bytes(path, buffer.getvalue())
        log.info(
            "%s: features of %d utterances (speed %.2f) cached in %s",
            split,
            len(features),
            factor,
            path,
        )
        return features

    def _compute(self, example: Example, factor: float) -> np.ndarray:
        where = _where(example)
        if self.task.kind == "audio":
            samples = read_audio(example.source, self.settings.sample_rate, where)
            features = compute_fbank(speed_perturb(samples, factor), self.settings)
        else:
            features = read_feature_file(example.source, where)
        if len(features) == 0:
            raise DataFileError(f"{example.source} (listed at {where}): zero-length utterance")
        if features.shape[1] != self.feature_dim:
            raise ConfigError(
                "data.feature_dim",
                f"is {self.feature_dim} but {example.source} (listed at {where}) has "
                f"{features.shape[1]}-dimensional features",
            )
        if not np.isfinite(features).all():
            raise DataFileError(f"{example.source} (listed at {where}): non-finite feature values")
        return features

    def feature_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Global mean and standard deviation of the training features (for CMVN)."""
        if self._statistics is None:
            frames = np.concatenate(self.split_data("train").sources).astype(np.float64)
            mean, std = frames.mean(0), frames.std(0)
            self._statistics = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())
        return self._statistics


def _where(example: Example) -> str:
    return example.origin or "?"
