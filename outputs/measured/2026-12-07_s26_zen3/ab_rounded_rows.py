"""Interleaved A/B: the 45-minute study's Transformer training step (transformer_small, fp32,
as attnlab-train runs it) on real Multi30k batches, each batch once, with the packed row counts
as they are (A) and rounded up for oneDNN's per-shape primitive caches (B), back to back on the
same batch, alternating which goes first. A sequence of new batches is what training sees: a
batch's token counts rarely repeat within the caches' reach. Prints the median seconds of each,
and the median and IQR of A/B step by step, skipping the first `skip` batches (B meets its
rounded shapes for the first time there).   python ab_rounded_rows.py [batches] [skip]"""
import statistics as st
import sys
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from attnlab.bench import criterion_for
from attnlab.config import build
from attnlab.models import transformer
from attnlab.models.attention import packing_for
from attnlab.runtime import keep_freed_memory

N = int(sys.argv[1]) if len(sys.argv) > 1 else 120
SKIP = int(sys.argv[2]) if len(sys.argv) > 2 else 20
keep_freed_memory()
with initialize_config_dir(config_dir="/work/main/conf", version_base=None):
    cfg = compose("train", overrides=["experiment=rnn_vs_transformer/transformer"])
datamodule = build(cfg.data, "data")
tokenizer = datamodule.prepare_tokenizer()
datamodule.setup("fit")
batches = []
for b in datamodule.train_dataloader():
    batches.append(b)
    if len(batches) == N:
        break
torch.manual_seed(0)
vocab = tokenizer.vocab_size
model = build(cfg.model, "model", src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=tokenizer.pad_id)
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
crit = criterion_for(cfg.criterion)
print(f"rounding applies here: {packing_for(model.src_embed.weight)}; {N} batches, "
      f"{len({int(b.num_source_tokens) for b in batches})} distinct source token counts")


def step(b, rounded):
    transformer.packing_for = packing_for if rounded else (lambda x: False)
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    logits = model(b.src, b.src_pad_mask, b.tgt_in, b.target_positions)
    loss, _ = crit(logits, b.tgt_out, target_positions=b.target_positions)
    (loss / b.num_target_tokens).backward()
    opt.step()
    return time.perf_counter() - t


a, r = [], []
for i, b in enumerate(batches):
    if i % 2:
        a.append(step(b, False)); r.append(step(b, True))
    else:
        r.append(step(b, True)); a.append(step(b, False))
ratio = [x / y for x, y in zip(a[SKIP:], r[SKIP:])]
q = np.percentile(ratio, [25, 75])
print(f"as they are: median {st.median(a[SKIP:]):.3f} s/step; rounded: {st.median(r[SKIP:]):.3f}")
print(f"speedup (as they are / rounded), step by step over {len(ratio)} batches: "
      f"median {st.median(ratio):.3f}x, IQR {q[0]:.3f}-{q[1]:.3f}")
print(f"first {SKIP} batches: as they are {st.median(a[:SKIP]):.3f}, rounded {st.median(r[:SKIP]):.3f}")
