"""Attention maps of chosen sentences: decode, teacher-force the hypothesis, plot every head.

Used by the per-epoch callback (validation sentences) and by ``attnlab-eval attention=true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attnlab.data.datamodule import TokenizedSplit
from attnlab.data.tokenizer import BOS, EOS
from attnlab.decoding import generate
from attnlab.plots import plot_attention


@dataclass
class SentenceAttention:
    """One sentence's attention of one layer: ``weights[head, query, key]`` with sub-word labels."""

    weights: np.ndarray
    queries: list[str]
    keys: list[str]
    hypothesis: str  # the decoded output the maps were computed on
    kind: str
    layer: int


@dataclass
class RenderedMap:
    index: int
    path: Path
    source: str
    hypothesis: str
    reference: str


@torch.no_grad()
def sentence_attention(
    model: torch.nn.Module,
    tokenizer,
    data: TokenizedSplit,
    indices: Sequence[int],
    decode: dict,
    kind: str = "cross",
    layer: int = -1,
) -> list[SentenceAttention]:
    """Decode the chosen sentences, teacher-force each hypothesis and return ``kind`` attention
    of ``layer`` (every head) for each, labelled with source and output sub-words."""
    indices = list(indices)
    if not indices:
        return []
    device = next(model.parameters()).device
    batch = data.collate(indices)
    src, pad_mask = batch.src.to(device), batch.src_pad_mask.to(device)
    nbest = generate(model, src, pad_mask, bos_id=BOS, eos_id=EOS, **decode)
    hyps = [hyps[0].tokens for hyps in nbest]
    longest = max(len(h) for h in hyps) + 1
    tgt_in = torch.full((len(hyps), longest), 0, dtype=torch.long, device=device)
    for row, tokens in enumerate(hyps):
        tgt_in[row, : len(tokens) + 1] = torch.tensor([BOS, *tokens], device=device)
    maps = model.attention_maps(src, pad_mask, tgt_in)
    if kind not in maps:
        raise ValueError(f"this model has no {kind!r} attention; it has {sorted(maps)}")
    n_layers = len(maps[kind])
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer {layer} does not exist; {kind} attention has {n_layers} layers")
    weights = maps[kind][layer].float().cpu()  # [B, heads, queries, keys]
    result = []
    # Speech sources are feature frames: label the encoder's (subsampled) frames by index.
    encoder_mask = model.encode(src, pad_mask).pad_mask if src.is_floating_point() else None
    for row, index in enumerate(indices):
        if encoder_mask is None:
            source = tokenizer.pieces([*data.sources[index].tolist(), EOS])
        else:
            source = [str(t) for t in range(int((~encoder_mask[row]).sum()))]
        output = tokenizer.pieces([*hyps[row], EOS])
        queries = output if kind != "encoder_self" else source
        keys = source if kind != "decoder_self" else tokenizer.pieces([BOS, *hyps[row]])
        result.append(
            SentenceAttention(
                weights[row, :, : len(queries), : len(keys)].numpy(),
                queries,
                keys,
                tokenizer.decode(hyps[row]),
                kind,
                layer,
            )
        )
    return result


def render_attention(
    model: torch.nn.Module,
    tokenizer,
    data: TokenizedSplit,
    indices: Sequence[int],
    out_dir: Path,
    decode: dict,
    kind: str = "cross",
    layer: int = -1,
) -> list[RenderedMap]:
    """Write one PNG per sentence: ``kind`` attention of ``layer``, every head, labelled with
    the source and hypothesis sub-words. Returns what was drawn."""
    indices = list(indices)
    maps = sentence_attention(model, tokenizer, data, indices, decode, kind, layer)
    rendered = []
    for index, sentence in zip(indices, maps, strict=True):
        path = out_dir / f"{kind}_layer{layer}_sent{index:04d}.png"
        plot_attention(
            sentence.weights,
            sentence.keys,
            sentence.queries,
            path,
            title=f"{data.name}[{index}] {kind} attention, layer {layer}: {sentence.hypothesis}",
        )
        rendered.append(
            RenderedMap(
                index,
                path,
                data.examples[index].source,
                sentence.hypothesis,
                data.examples[index].target,
            )
        )
    return rendered
