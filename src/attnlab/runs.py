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
# The W&B summary key that holds a finished run's metrics.json (attnlab-report reads it back).
WANDB_METRICS_KEY = "attnlab/metrics"


def _git(*args: str, where: Path) -> str | None:
    try:
        # --no-optional-locks: never take .git/index.lock beside a user's git or other ranks
        command = ["git", "--no-optional-locks", *args]
        out = subprocess.run(command, capture_output=True, text=True, timeout=5, cwd=where)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_sha(where: Path = Path(__file__).parent) -> str | None:
    """The commit attnlab runs from (None outside a git checkout, e.g. a wheel install)."""
    out = _git("rev-parse", "HEAD", where=where)
    if out is None:
        return None
    return out.strip() or None


def git_dirty(where: Path = Path(__file__).parent) -> bool | None:
    """Whether the checkout's ``src/`` or ``conf/`` differ from that commit (edited, staged or
    new files): a figure from a dirty tree is not reproducible from the commit alone."""
    out = _git("status", "--porcelain", "--", ":(top)src", ":(top)conf", where=where)
    if out is None:
        return None
    return bool(out.strip())


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
    atomic_write_bytes(path, (metrics_json(metrics, indent=2) + "\n").encode())
    return path


def metrics_json(metrics: dict[str, Any], indent: int | None = None) -> str:
    """``metrics`` as JSON (paths and other objects as strings)."""
    return json.dumps(metrics, indent=indent, sort_keys=True, default=str)


def redact_override(override: str) -> str:
    """``+service.api_key=abc`` -> ``+service.api_key=<redacted>``; other overrides unchanged."""
    key, sep, value = override.partition("=")
    name = key.lstrip("+~").rsplit(".", 1)[-1]
    return f"{key}=<redacted>" if sep and value and SECRET_KEY.search(name) else override


def scrub_run_directory(output_dir: Path) -> None:
    """Rewrite what Hydra saved in ``.hydra/`` (the composed config, the command-line overrides)
    with secret-looking values redacted; Hydra writes them before attnlab starts."""
    folder = Path(output_dir) / ".hydra"
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        path = folder / name
        if not path.exists():
            continue
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        scrubbed = _scrub_overrides(_scrub(node))
        if scrubbed != node:
            atomic_write_bytes(path, OmegaConf.to_yaml(OmegaConf.create(scrubbed)).encode())


def _scrub_overrides(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _scrub_overrides(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub_overrides(v) for v in node]
    return redact_override(node) if isinstance(node, str) else node


class RunPreempted(Exception):
    """Training stopped on a signal after saving a checkpoint; the same command resumes it."""

    def __init__(self, signum: int, checkpoint: str):
        super().__init__(f"received signal {signum}; saved {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint
