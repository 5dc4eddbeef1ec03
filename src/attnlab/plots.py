"""Attention heatmaps: source sub-words across, target sub-words down (as in Bahdanau et al. Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_LABELS = 60  # tick labels per axis; longer inputs (dialogues, speech frames) show every k-th


def plot_attention(
    weights: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """Save ``weights`` ``[heads, T, S]`` (or ``[T, S]``) as a grid of heatmaps, one per head."""
    weights = np.asarray(weights)
    if weights.ndim == 2:
        weights = weights[None]
    heads, rows, cols = weights.shape
    grid = int(np.ceil(np.sqrt(heads)))
    # Sized by what can be read, not by the input: a 512-token dialogue must not make a
    # 30,000-pixel figure (slow to draw and useless to look at).
    cell = max(2.5, 0.28 * min(max(rows, cols), MAX_LABELS))
    fig, axes = plt.subplots(
        int(np.ceil(heads / grid)),
        grid,
        figsize=(cell * grid, cell * np.ceil(heads / grid)),
        squeeze=False,
    )
    for index, ax in enumerate(axes.flat):
        if index >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[index], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        x_ticks, y_ticks = _ticks(cols), _ticks(rows)
        ax.set_xticks(x_ticks, labels=_labels(source_tokens, x_ticks), rotation=90, fontsize=7)
        ax.set_yticks(y_ticks, labels=_labels(target_tokens, y_ticks), fontsize=7)
        if heads > 1:
            ax.set_title(f"head {index}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ticks(n: int) -> list[int]:
    return list(range(0, n, -(-n // MAX_LABELS))) if n else []


def _labels(tokens: Sequence[str], ticks: list[int]) -> list[str]:
    return [str(tokens[i]) if i < len(tokens) else "" for i in ticks]
