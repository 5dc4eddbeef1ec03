"""The data modules' argument checks, in a module that imports neither torch nor Lightning.

``Seq2SeqDataModule`` calls :func:`check_data_arguments` first thing and ``SpeechDataModule``
:func:`check_speech_settings`; the config validator calls them too, before Lightning is imported
(seconds), so an unknown split or an impossible batch size is named at once (see
``models/arguments.py`` for the models' checks).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from attnlab.config_errors import ConfigError, require
from attnlab.data.speech_inputs import FbankSettings
from attnlab.data.tokenizer import TOKENIZERS

DEFAULT_TOKENIZER = {"kind": "sentencepiece", "vocab_size": 8000}
SPEECH_TOKENIZER = {"kind": "char"}


def check_tokenizer_settings(tokenizer_class: type, settings: dict) -> None:
    """Unknown or impossible tokenizer settings, named as ``tokenizer.<key>`` before any text
    is read (a tokenizer without ``check_settings`` takes none)."""
    check = getattr(tokenizer_class, "check_settings", None)
    if check is None:
        return
    given = {k: v for k, v in settings.items() if k != "kind"}
    known = inspect.signature(check).parameters
    for key in given:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(known)}"
        require(key in known, f"tokenizer.{key}", f"unknown key for {tokenizer_class.kind}{hint}")
    try:
        check(**given)
    except ConfigError as error:
        raise error.under("tokenizer") from None


def check_data_arguments(
    *,
    task: Any,
    tokenizer: dict | None,
    max_tokens: int,
    eval_max_tokens: int,
    max_source_positions: int,
    max_target_positions: int,
    valid_split: str,
    test_splits: Sequence[str],
    split: str | None,
    limit_train_examples: int | None,
    train_overlong: str,
    num_workers: int,
) -> dict:
    """Raise :class:`ConfigError` for an impossible data setting; return the tokenizer settings
    with their default filled in."""
    tokenizer = dict(tokenizer or DEFAULT_TOKENIZER)
    require(
        tokenizer.get("kind") in TOKENIZERS,
        "tokenizer.kind",
        f"must be one of {sorted(TOKENIZERS)}, got {tokenizer.get('kind')!r}",
    )
    check_tokenizer_settings(TOKENIZERS[tokenizer["kind"]], tokenizer)
    require(max_tokens > 0, "max_tokens", f"must be positive, got {max_tokens}")
    require(eval_max_tokens > 0, "eval_max_tokens", f"must be positive, got {eval_max_tokens}")
    require(num_workers >= 0, "num_workers", f"must be >= 0, got {num_workers}")
    require(
        train_overlong in ("drop", "truncate"),
        "train_overlong",
        f"must be 'drop' or 'truncate', got {train_overlong!r}",
    )
    for key, value in (
        ("max_source_positions", max_source_positions),
        ("max_target_positions", max_target_positions),
    ):
        require(value > 1, key, f"must be > 1, got {value}")
    for key, names in (
        ("valid_split", [valid_split]),
        ("test_splits", list(test_splits)),
        ("split", [split] if split else []),
    ):
        for name in names:
            require(
                name in task.splits,
                key,
                f"unknown split {name!r}; {task.name} has {list(task.splits)}",
            )
    require(
        max_tokens >= max(max_source_positions, max_target_positions) or limit_train_examples,
        "max_tokens",
        f"{max_tokens} is smaller than the longest example allowed "
        f"(max_source_positions={max_source_positions}, max_target_positions={max_target_positions})",
    )
    return tokenizer


def check_speech_settings(
    *, task: Any, features: dict | None, feature_dim: int, speed_perturb: Sequence[float]
) -> FbankSettings:
    """Raise :class:`ConfigError` for impossible feature settings of a speech data module;
    return its filterbank settings."""
    settings = FbankSettings.from_config(features)
    require(feature_dim >= 1, "feature_dim", f"must be >= 1, got {feature_dim}")
    if task.kind == "audio":
        require(
            feature_dim == settings.num_mel_bins,
            "feature_dim",
            f"is {feature_dim} but features.num_mel_bins is {settings.num_mel_bins}",
        )
    for factor in speed_perturb:
        require(0.5 <= factor <= 2.0, "speed_perturb", f"factors must be in [0.5, 2], got {factor}")
    require(
        not speed_perturb or task.kind == "audio",
        "speed_perturb",
        "needs audio; precomputed features cannot be speed-perturbed",
    )
    return settings


def check_speech_data_arguments(
    *,
    task: Any,
    features: dict | None,
    feature_dim: int,
    speed_perturb: Sequence[float],
    tokenizer: dict | None,
    **data_arguments: Any,
) -> dict:
    """:func:`check_speech_settings`, then :func:`check_data_arguments` with characters as the
    default targets (what ``SpeechDataModule`` checks when it is built)."""
    check_speech_settings(
        task=task, features=features, feature_dim=feature_dim, speed_perturb=speed_perturb
    )
    common = inspect.signature(check_data_arguments).parameters
    return check_data_arguments(
        task=task,
        tokenizer=tokenizer or dict(SPEECH_TOKENIZER),
        **{k: v for k, v in data_arguments.items() if k in common},
    )


# The data modules whose arguments the validator checks before importing them.
ARGUMENT_CHECKS: dict[str, Callable[..., Any]] = {
    "attnlab.data.datamodule.Seq2SeqDataModule": check_data_arguments,
    "attnlab.data.speech.SpeechDataModule": check_speech_data_arguments,
}
