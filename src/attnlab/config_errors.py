"""One exception type for configuration mistakes, so every check can name the offending key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, mistyped or impossible.

    ``key`` is the dotted config path (``model.n_heads``). Components raise it with their local
    argument name; the validator prefixes the config section so the user sees the full path.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def under(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.message)


def require(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, message)


def check_onednn_linear(mode: object) -> None:
    """``onednn_linear`` is true, false or auto (``attnlab.models.linear.use_onednn``); checked
    here, torch-free, so that the CLIs name a bad value before importing torch."""
    require(
        isinstance(mode, bool) or mode == "auto",
        "onednn_linear",
        f"must be true, false or auto, got {mode!r}",
    )
