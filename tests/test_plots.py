"""Attention heatmaps stay readable (and cheap) however long the input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attnlab.plots import MAX_LABELS, plot_attention


def test_a_long_input_makes_a_bounded_figure_with_thinned_labels(tmp_path):
    weights = np.random.default_rng(0).dirichlet(np.ones(512), size=(4, 20))  # [heads, 20, 512]
    keys = [f"k{i}" for i in range(512)]
    path = plot_attention(weights, keys, [f"q{i}" for i in range(20)], tmp_path / "long.png")
    height, width, _ = plt.imread(path).shape
    # Two heads across, each at most MAX_LABELS label-widths wide: not 512 of them.
    assert width <= 2 * 0.28 * MAX_LABELS * 110 + 10
    assert height <= width


def test_short_inputs_label_every_token_and_long_ones_every_kth():
    from attnlab.plots import _ticks

    assert _ticks(5) == [0, 1, 2, 3, 4]
    assert _ticks(MAX_LABELS) == list(range(MAX_LABELS))
    long = _ticks(512)
    assert len(long) <= MAX_LABELS and long[0] == 0 and long[-1] >= 512 - 512 // MAX_LABELS - 1
