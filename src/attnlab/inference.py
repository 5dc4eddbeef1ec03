"""Use a trained model: ``attnlab.load(path)`` in Python, ``attnlab-predict`` in the shell.

Everything comes from the checkpoint (config, tokenizer, weights), so a model keeps working
after it is moved away from its run directory and training data. Inputs are tokenised and
truncated exactly as ``attnlab-eval`` does, batched by length under the training config's
``data.eval_max_tokens``, and decoded with the training config's ``decode`` settings unless told
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from attnlab.attention_maps import SentenceAttention, sentence_attention
from attnlab.checkpoints import load_checkpoint, restore_model
from attnlab.config import check_decode, check_decode_fits_model
from attnlab.config_errors import ConfigError
from attnlab.data.batching import TokenBudgetBatchSampler
from attnlab.data.datamodule import TokenizedSplit
from attnlab.data.tasks import Example
from attnlab.decoding import generate

# Keys every decoding strategy understands; the rest belong to one strategy only.
_SHARED_DECODE_KEYS = ("max_len_a", "max_len_b", "min_len")


class InputError(ValueError):
    """An input the model cannot take (e.g. text given to a speech model); names the input."""


@dataclass
class Prediction:
    text: str
    score: float  # what beam search ranks by (length-normalised); greedy: sum of log-probs
    log_prob: float  # sum of token log-probs, end-of-sentence included


class Predictor:
    """A trained model with its tokenizer and decoding settings, ready for raw text."""

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, config: DictConfig, device: str = "cpu"
    ):
        self.device = torch.device(_resolve_device(device))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.decode: dict[str, Any] = OmegaConf.to_container(config.decode, resolve=True)
        self.max_source_tokens = int(config.data.max_source_positions) - 1  # room for EOS
        # A speech model (its encoder reads feature frames) takes audio paths, not text.
        self.speech = config.model.get("input_dim") is not None
        self.max_tokens = int(config.data.eval_max_tokens)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Predictor:
        restored = restore_model(load_checkpoint(path))
        return cls(restored.model, restored.tokenizer, restored.config, device=device)

    # -- decoding settings ---------------------------------------------------------------------
    def decode_settings(self, nbest: int = 1, **overrides: Any) -> dict[str, Any]:
        """The checkpoint's decoding settings with ``overrides`` applied, checked.

        Switching ``strategy`` drops the options that only the old strategy understands, so
        ``strategy="greedy"`` works on a model trained with beam-search validation.
        """
        settings = dict(self.decode)
        strategy = overrides.get("strategy", settings.get("strategy"))
        if strategy != settings.get("strategy"):
            settings = {k: v for k, v in settings.items() if k in _SHARED_DECODE_KEYS}
        settings.update(overrides)
        settings.pop("nbest", None)  # the caller's, not whatever the checkpoint's decoder kept
        if nbest != 1:
            settings["nbest"] = nbest
        check_decode(OmegaConf.create(settings))
        check_decode_fits_model(settings, self.config.model)
        return settings

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, inputs: Sequence[str], **decode: Any) -> list[str]:
        """The best output for each input, in input order; an empty input gives ``""``."""
        return [best[0].text for best in self.predict_nbest(inputs, **decode)]

    @torch.no_grad()
    def predict_nbest(
        self,
        inputs: Sequence[str],
        nbest: int = 1,
        max_tokens: int | None = None,
        **decode: Any,
    ) -> list[list[Prediction]]:
        """The ``nbest`` best outputs of each input, best first (``nbest > 1`` needs beam search
        with ``beam_size >= nbest``). Inputs are decoded in batches of similar length."""
        if isinstance(inputs, str):
            raise TypeError("inputs must be a list of strings, not one string")
        settings = self.decode_settings(nbest, **decode)
        budget = max_tokens or self.max_tokens
        outputs: list[list[Prediction]] = [[Prediction("", 0.0, 0.0)] for _ in inputs]
        kept = [i for i, text in enumerate(inputs) if text.strip()]
        if not kept:
            return outputs
        data = self.tokenize([inputs[i] for i in kept])
        try:
            sampler = TokenBudgetBatchSampler(data.lengths(), budget, shuffle=False)
        except ValueError as error:
            raise ConfigError("max_tokens", str(error)) from None
        for indices in sampler:
            batch = data.collate(list(indices))
            nbest_lists = generate(
                self.model,
                batch.src.to(self.device),
                batch.src_pad_mask.to(self.device),
                bos_id=self.tokenizer.bos_id,
                eos_id=self.tokenizer.eos_id,
                **settings,
            )
            for index, hypotheses in zip(indices, nbest_lists, strict=True):
                outputs[kept[index]] = [
                    Prediction(self.tokenizer.decode(h.tokens), h.score, h.log_prob)
                    for h in hypotheses
                ]
        return outputs

    def attention(
        self, text: str, kind: str = "cross", layer: int = -1, **decode: Any
    ) -> SentenceAttention:
        """Decode ``text`` and return the ``kind`` attention of ``layer`` (every head) on the
        output: ``.weights[head, output token, source token]``, with ``.queries``/``.keys``
        the sub-word labels and ``.hypothesis`` the output. Draw it with ``attnlab.plots``."""
        if not text.strip():
            raise ValueError("attention needs a non-empty input")
        settings = self.decode_settings(**decode)
        with torch.no_grad():
            (result,) = sentence_attention(
                self.model, self.tokenizer, self.tokenize([text]), [0], settings, kind, layer
            )
        return result

    def tokenize(self, texts: Sequence[str]) -> TokenizedSplit:
        """Token ids as ``attnlab-eval`` sees them: sources cut to the model's position limit.
        For a speech model the inputs are audio files (or feature files, for a model trained
        on precomputed features), turned into features as in training."""
        if self.speech:
            return self._features(texts)
        sources = [
            np.asarray(ids[: self.max_source_tokens], dtype=np.int32)
            for ids in self.tokenizer.encode_batch(list(texts))
        ]
        empty = np.zeros(0, dtype=np.int32)
        return TokenizedSplit(
            "input", [Example(t, "") for t in texts], sources, [empty for _ in texts]
        )

    def _features(self, paths: Sequence[str]) -> TokenizedSplit:
        from attnlab.data.speech import SpeechSplit, compute_fbank, read_audio, read_feature_file
        from attnlab.data.speech_inputs import FbankSettings

        settings = FbankSettings.from_config(self.config.data.get("features"))
        from_features = str(self.config.data.task._target_).endswith("FeatureManifest")
        features = []
        for number, path in enumerate(paths, start=1):
            path = path.strip()
            if not path.startswith("ark:") and not Path(path.split(":")[0]).is_file():
                raise InputError(
                    f"input {number}: {path[:60]!r} is not a file; this is a speech model, "
                    f"its inputs are {'feature' if from_features else 'audio'} file paths"
                )
            if from_features:
                matrix = read_feature_file(path, f"input {number}")
            else:
                matrix = compute_fbank(read_audio(path, settings.sample_rate), settings)
            features.append(matrix[: self.max_source_tokens + 1])
        empty = np.zeros(0, dtype=np.int32)
        return SpeechSplit(
            "input", [Example(p, "") for p in paths], features, [empty for _ in paths]
        )


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """``attnlab.load("last.ckpt").predict(["Ein Mann fährt Fahrrad."])``"""
    return Predictor.from_checkpoint(path, device=device)


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
