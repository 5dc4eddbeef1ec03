"""Does a real training batch run slower when its shapes are new to oneDNN? The 45-minute
study's Transformer (transformer_small, fp32, as attnlab-train runs it) on its first N real
Multi30k batches (token-budget batches of 2,560 padded tokens a side: the packed token counts
differ from batch to batch): pass 1 meets every shape for the first time, pass 2 repeats the
same batches in the same order (their primitives cached, if the caches hold them all), pass 3
again. Prints the median seconds per step of each pass, the distinct packed token counts, and
resident memory after each pass.   python shape_novelty_probe.py [N]"""
import statistics as st
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from attnlab.bench import criterion_for
from attnlab.config import build
from attnlab.runtime import keep_freed_memory

N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
keep_freed_memory()
with initialize_config_dir(config_dir="/work/main/conf", version_base=None):
    cfg = compose("train", overrides=["experiment=rnn_vs_transformer/transformer"])
datamodule = build(cfg.data, "data")
tokenizer = datamodule.prepare_tokenizer()
datamodule.setup("fit")
loader = datamodule.train_dataloader()
batches = []
for b in loader:
    batches.append(b)
    if len(batches) == N:
        break
torch.manual_seed(0)
vocab = tokenizer.vocab_size
model = build(cfg.model, "model", src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=tokenizer.pad_id)
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
crit = criterion_for(cfg.criterion)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def step(b):
    opt.zero_grad(set_to_none=True)
    logits = model(b.src, b.src_pad_mask, b.tgt_in, b.target_positions)
    loss, _ = crit(logits, b.tgt_out, target_positions=b.target_positions)
    (loss / b.num_target_tokens).backward()
    opt.step()


src = {int(b.num_source_tokens) for b in batches}
tgt = {int(b.num_target_tokens) for b in batches}
print(f"{N} batches: {len(src)} distinct source token counts, {len(tgt)} target")
for p in range(1, 4):
    times = []
    for b in batches:
        t = time.perf_counter(); step(b); times.append(time.perf_counter() - t)
    print(f"pass {p}: median {st.median(times):.3f} s/step, mean {st.mean(times):.3f}; "
          f"rss {rss():.0f} MiB")
