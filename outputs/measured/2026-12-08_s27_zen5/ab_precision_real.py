"""Interleaved A/B on real Multi30k batches as attnlab-train makes them (the 45-minute study's
Transformer, transformer_small, 2,560-token batches): fp32 (A) against bf16 autocast (B), what
`${cpu_precision:}` picks on a CPU with AVX512_BF16; back to back on the same batch,
alternating which goes first. Does bf16 still train faster here, now that fp32 runs through
oneDNN's AVX-512 kernels, weight gradients included?
    python ab_precision_real.py [batches] [skip]"""
import contextlib
import statistics as st
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from attnlab.bench import criterion_for
from attnlab.config import build, cpu_precision
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
print(f"cpu_precision() here: {cpu_precision()}; {N} batches of max_tokens {cfg.data.max_tokens}")


def step(b, bf16):
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with ctx:
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
print(f"fp32 median {st.median(a)*1e3:.1f} ms, bf16-mixed median {st.median(r)*1e3:.1f} ms")
print(f"bf16 speed / fp32, per batch: median {st.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} batches)")
