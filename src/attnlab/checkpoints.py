"""Reading attnlab checkpoints safely and rebuilding the model they hold.

A checkpoint is self-contained: besides the weights it carries (under ``"attnlab"``) the
resolved training config and the tokenizer, so ``attnlab-eval``, ``attnlab-predict`` and
``attnlab.load`` need nothing else. Loading uses ``weights_only=True``: tensors and plain data,
never arbitrary pickled objects.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from attnlab import __version__
from attnlab.config_errors import ConfigError

CHECKPOINT_KEY = "attnlab"
# Bumped when what a checkpoint carries changes incompatibly. Checkpoints written before the
# field existed hold format 1.
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def checkpoint_metadata(config: dict | None, tokenizer: Any) -> dict[str, Any]:
    """What every attnlab checkpoint carries besides the weights."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "config": config,
        "tokenizer_kind": getattr(tokenizer, "kind", None),
        "tokenizer_bytes": tokenizer.to_bytes() if tokenizer is not None else None,
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("ckpt_path", f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise CheckpointError(
            f"{path}: not a readable attnlab checkpoint (truncated or tampered?): "
            f"{str(error).splitlines()[0]}"
        ) from None
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not meta or not meta.get("config"):
        raise CheckpointError(f"{path}: no attnlab config inside; was it written by attnlab-train?")
    written_format = meta.get("format", 1)
    if written_format != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {written_format} (written by attnlab "
            f"{meta.get('version', '?')}); this attnlab {__version__} reads format "
            f"{CHECKPOINT_FORMAT}. Use the attnlab version that wrote it."
        )
    if not meta.get("tokenizer_bytes"):
        raise CheckpointError(f"{path}: the checkpoint carries no tokenizer")
    return checkpoint


def check_resumable(path: str | Path, config: dict[str, Any]) -> None:
    """Refuse to resume ``path`` into a run whose model or data differ from the checkpoint's
    (the same run directory reused with other settings), naming the keys that changed."""
    written = load_checkpoint(path)[CHECKPOINT_KEY]["config"]
    changed = [
        f"{section}.{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
        for section in ("model", "data")
        for old, new in [(_what_trains(written, section), _what_trains(config, section))]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    if changed:
        raise ConfigError(
            "resume",
            f"{path} was written by a run with other settings ({'; '.join(changed[:5])}); "
            "give this run its own run_name (or hydra.run.dir), or resume=false to start over",
        )


def _what_trains(config: dict[str, Any], section: str) -> dict[str, Any]:
    """The settings of ``section`` that define what is trained (not where files live)."""
    node = dict(config.get(section) or {})
    for key in ("cache_dir", "num_workers", "split", "eval_max_tokens"):
        node.pop(key, None)
    if isinstance(node.get("task"), dict):
        node["task"] = {k: v for k, v in node["task"].items() if k != "root"}
    return node


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class RestoredModel:
    model: torch.nn.Module
    tokenizer: Any
    config: DictConfig  # the resolved training config


def restore_model(checkpoint: dict[str, Any]) -> RestoredModel:
    """Rebuild the model (in eval mode, on the CPU) and tokenizer of a loaded checkpoint."""
    from attnlab.data.tokenizer import tokenizer_from_bytes

    meta = checkpoint[CHECKPOINT_KEY]
    config = OmegaConf.create(meta["config"])
    tokenizer = tokenizer_from_bytes(meta["tokenizer_kind"], meta["tokenizer_bytes"])
    model = build_model(config, tokenizer)
    prefix = "model."
    weights = {
        name[len(prefix) :]: tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith(prefix)
    }
    model.load_state_dict(weights)
    return RestoredModel(model.eval(), tokenizer, config)


def build_model(config: DictConfig, tokenizer: Any) -> torch.nn.Module:
    """The model a training config describes, sized to the tokenizer's vocabulary."""
    from attnlab.config import build

    return build(
        config.model,
        "model",
        src_vocab_size=tokenizer.vocab_size,
        tgt_vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
    )


def atomic_checkpoint_io() -> Any:
    """A Lightning CheckpointIO that writes each checkpoint under a temporary name and renames
    it into place, so a run killed while saving leaves the previous checkpoint intact."""
    import os

    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
            try:
                torch.save(checkpoint, partial)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)

    return AtomicCheckpointIO()
