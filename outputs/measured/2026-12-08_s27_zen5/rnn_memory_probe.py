"""Resident memory of the 45-minute study's Luong model (rnn_luong, fp32, real Multi30k batches
as attnlab-train makes them, 2,560 tokens, Adam) over N updates, with the output layer's row
count rounded (ROUND=1, the default now) or not (ROUND=0). One variant per process: memory
is the process's. Prints resident MiB and the median step time every 50 updates.
    ROUND=0|1 python rnn_memory_probe.py [updates] [experiment]"""
import os
import statistics as st
import sys
import time

import torch
from hydra import compose, initialize_config_dir

from attnlab.bench import criterion_for
from attnlab.config import build
from attnlab.models import rnn
from attnlab.runtime import keep_freed_memory

N = int(sys.argv[1]) if len(sys.argv) > 1 else 400
EXPERIMENT = sys.argv[2] if len(sys.argv) > 2 else "rnn_vs_transformer/luong"
if os.environ.get("ROUND", "1") == "0":
    rnn.packing_for = lambda x: False
keep_freed_memory()
with initialize_config_dir(config_dir="/work/main/conf", version_base=None):
    cfg = compose("train", overrides=[f"experiment={EXPERIMENT}"])
datamodule = build(cfg.data, "data")
tokenizer = datamodule.prepare_tokenizer()
datamodule.setup("fit")
torch.manual_seed(0)
vocab = tokenizer.vocab_size
model = build(cfg.model, "model", src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=tokenizer.pad_id)
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
crit = criterion_for(cfg.criterion)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


print(f"{EXPERIMENT}, ROUND={os.environ.get('ROUND', '1')}, {N} updates, max_tokens {cfg.data.max_tokens}")
times, done, counts = [], 0, set()
while done < N:
    for b in datamodule.train_dataloader():
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(b.src, b.src_pad_mask, b.tgt_in, b.target_positions)
        loss, _ = crit(logits, b.tgt_out, target_positions=b.target_positions)
        (loss / b.num_target_tokens).backward()
        opt.step()
        times.append(time.perf_counter() - t)
        counts.add(int(b.target_positions.numel()))
        done += 1
        if done % 50 == 0:
            print(f"update {done:4d}: {rss_mib():7.0f} MiB resident, median step {st.median(times[-50:])*1e3:6.1f} ms, "
                  f"{len(counts)} distinct target counts so far", flush=True)
        if done == N:
            break
