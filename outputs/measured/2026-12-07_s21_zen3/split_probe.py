"""Probe: beam search on batch 64 with 2 intra-op threads, vs batch 32 on 1 thread (x2),
vs the batch split in two halves searched at once by two Python threads, 1 intra-op thread each.

    python outputs/measured/2026-12-07_s21_zen3/split_probe.py [hydra overrides...]
"""
import dataclasses, os, statistics, sys, threading, time

import torch
from hydra import compose, initialize_config_dir

from attnlab import bench as B
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
m = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()


def search(b):
    with torch.no_grad():
        return B.attnlab_search(m, b, "beam", 32, beam_size=4, length_penalty=0.6)


h1 = dataclasses.replace(batch, src=batch.src[:32], src_pad_mask=batch.src_pad_mask[:32])
h2 = dataclasses.replace(batch, src=batch.src[32:], src_pad_mask=batch.src_pad_mask[32:])


def whole():
    torch.set_num_threads(2)
    search(batch)


def serial_1thread():
    torch.set_num_threads(1)
    search(h1); search(h2)
    torch.set_num_threads(2)


def threaded():
    def run(b):
        torch.set_num_threads(1)
        search(b)
    ts = [threading.Thread(target=run, args=(b,)) for b in (h1, h2)]
    for t in ts: t.start()
    for t in ts: t.join()
    torch.set_num_threads(2)


fns = {"whole_2threads": whole, "halves_serial_1thread": serial_1thread, "halves_2pythreads": threaded}
times = {k: [] for k in fns}
for r in range(7):
    for k, f in fns.items():
        t = time.perf_counter(); f(); dt = time.perf_counter() - t
        if r > 0:
            times[k].append(dt)
for k, v in times.items():
    print(f"{k:24s} median {statistics.median(v)*1e3:7.1f} ms  ({64/statistics.median(v):5.1f} sentences/s)  all {[round(x*1e3) for x in v]}")
