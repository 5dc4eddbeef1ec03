"""The models' argument checks, in a module that imports neither torch nor the models.

Each model calls its check first thing in ``__init__``; the config validator calls the same
function before importing torch (1.5 s here), so an impossible size or an unknown option is
named at once. ``ARGUMENT_CHECKS`` maps a model's ``_target_`` to its check.
"""

from __future__ import annotations

from collections.abc import Callable

from attnlab.config_errors import require


def check_transformer(
    *,
    d_model: int,
    d_ff: int,
    n_heads: int,
    d_k: int | None,
    d_v: int | None,
    n_encoder_layers: int,
    n_decoder_layers: int,
    dropout: float,
    attention_dropout: float,
    activation_dropout: float,
    norm_position: str,
    positional: str,
    max_positions: int,
) -> None:
    for name, value in [
        ("d_model", d_model),
        ("d_ff", d_ff),
        ("n_heads", n_heads),
        ("max_positions", max_positions),
    ]:
        require(value > 0, name, f"must be positive, got {value}")
    # §3.2.2 sets d_k = d_v = d_model / h; Table 3 (A, B) overrides them explicitly.
    require(
        d_model % n_heads == 0 or (d_k is not None and d_v is not None),
        "n_heads",
        f"d_model={d_model} is not divisible by n_heads={n_heads}; choose n_heads dividing "
        "d_model or set d_k and d_v explicitly",
    )
    require(d_k is None or d_k > 0, "d_k", f"must be positive, got {d_k}")
    require(d_v is None or d_v > 0, "d_v", f"must be positive, got {d_v}")
    require(d_model % 2 == 0, "d_model", f"must be even for sinusoidal positions, got {d_model}")
    require(n_encoder_layers >= 1, "n_encoder_layers", f"must be >= 1, got {n_encoder_layers}")
    require(n_decoder_layers >= 1, "n_decoder_layers", f"must be >= 1, got {n_decoder_layers}")
    for name, value in [
        ("dropout", dropout),
        ("attention_dropout", attention_dropout),
        ("activation_dropout", activation_dropout),
    ]:
        require(0.0 <= value < 1.0, name, f"must be in [0, 1), got {value}")
    require(
        norm_position in ("post", "pre"),
        "norm_position",
        f"must be 'post' (paper) or 'pre', got {norm_position!r}",
    )
    require(
        positional in ("sinusoidal", "learned"),
        "positional",
        f"must be 'sinusoidal' or 'learned', got {positional!r}",
    )


def check_sizes(**values: float) -> None:
    """Dropout rates in [0, 1); every other size >= 1."""
    for name, value in values.items():
        if name.endswith("dropout"):
            require(0.0 <= value < 1.0, name, f"must be in [0, 1), got {value}")
        else:
            require(value >= 1, name, f"must be >= 1, got {value}")


def check_bahdanau(
    *,
    embed_dim: int,
    hidden_size: int,
    attention_size: int | None,
    encoder_layers: int,
    decoder_layers: int,
    dropout: float,
    deep_output: bool,
    maxout_size: int | None,
    tie_output: bool,
) -> None:
    maxout_size = maxout_size or embed_dim
    check_sizes(
        embed_dim=embed_dim,
        hidden_size=hidden_size,
        attention_size=attention_size or hidden_size,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        maxout_size=maxout_size,
        dropout=dropout,
    )
    out_size = maxout_size if deep_output else hidden_size
    require(
        not tie_output or out_size == embed_dim,
        "tie_output",
        f"needs the output layer's input ({out_size}) to equal embed_dim ({embed_dim})",
    )


def check_luong(
    *,
    embed_dim: int,
    hidden_size: int,
    encoder_layers: int,
    decoder_layers: int,
    dropout: float,
    score: str,
    tie_output: bool,
    bidirectional: bool,
) -> None:
    check_sizes(
        embed_dim=embed_dim,
        hidden_size=hidden_size,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        dropout=dropout,
    )
    require(
        score in ("dot", "general", "concat"),
        "score",
        f"must be dot, general or concat, got {score!r}",
    )
    require(
        not tie_output or hidden_size == embed_dim,
        "tie_output",
        f"needs hidden_size ({hidden_size}) to equal embed_dim ({embed_dim})",
    )
    require(
        not bidirectional or hidden_size % 2 == 0,
        "hidden_size",
        "must be even with a bidirectional encoder (each direction gets half)",
    )


ARGUMENT_CHECKS: dict[str, Callable[..., None]] = {
    "attnlab.models.transformer.Transformer": check_transformer,
    "attnlab.models.rnn.BahdanauRNN": check_bahdanau,
    "attnlab.models.rnn.LuongRNN": check_luong,
}
