"""What a run leaves behind: resolved config, metrics.json, and the facts that make it reproducible."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from attnlab.data.files import atomic_write_bytes

# Keys whose values must never reach a saved config or a logger: "wandb.api_key", "hf_token"...
# but not "tokenizer" or "max_tokens".
SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|(^|_)token)$", re.IGNORECASE)


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def resolved_container(cfg: DictConfig) -> dict[str, Any]:
    """The config with every interpolation resolved and secret-looking values removed."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return _scrub(container)


def _scrub(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("<redacted>" if SECRET_KEY.search(str(k)) and v else _scrub(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_scrub(v) for v in node]
    return node


def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    text = OmegaConf.to_yaml(OmegaConf.create(resolved_container(cfg)))
    atomic_write_bytes(Path(output_dir) / "config_resolved.yaml", text.encode("utf-8"))


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    path = Path(output_dir) / "metrics.json"
    atomic_write_bytes(
        path, (json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n").encode()
    )
    return path
