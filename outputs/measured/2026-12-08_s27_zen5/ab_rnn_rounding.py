"""Interleaved A/B on real Multi30k batches as attnlab-train makes them (the 45-minute study's
Luong model, fp32, 2,560-token batches): the output layer's row count as it is (A) or rounded
up (B), back to back on the same batch, alternating which goes first. Prints median
seconds and the median and IQR of A/B step by step, skipping the first `skip` batches.
    python ab_rnn_rounding.py [batches] [skip]"""
import statistics as st
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from attnlab.bench import criterion_for
from attnlab.config import build
from attnlab.models import rnn
from attnlab.models.attention import packing_for
from attnlab.runtime import keep_freed_memory

N = int(sys.argv[1]) if len(sys.argv) > 1 else 120
SKIP = int(sys.argv[2]) if len(sys.argv) > 2 else 20
keep_freed_memory()
with initialize_config_dir(config_dir="/work/main/conf", version_base=None):
    cfg = compose("train", overrides=["experiment=rnn_vs_transformer/luong"])
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
print(f"max_tokens {cfg.data.max_tokens}; rounding applies here: {packing_for(model.tgt_embed.weight)}; {N} batches")


def step(b, rounded):
    rnn.packing_for = packing_for if rounded else (lambda x: False)
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
a, r = a[SKIP:], r[SKIP:]
ratios = [x / y for x, y in zip(a, r)]
q = st.quantiles(ratios, n=4)
print(f"as is median {st.median(a)*1e3:.1f} ms, rounded median {st.median(r)*1e3:.1f} ms")
print(f"rounded speed / as is, per batch: median {st.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} batches)")
