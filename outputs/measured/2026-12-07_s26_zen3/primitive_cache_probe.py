"""What one new matmul shape costs through oneDNN (torch.ops.mkldnn._linear_pointwise, the op
attnlab's fp32 Linear takes on AMD CPUs): time of a call whose row count was seen before (a
primitive cache hit) against one with a row count never seen (a miss: a new primitive), and the
resident memory each new shape leaves behind. Row counts 2,000-3,000 as in the 45-minute
study's packed batches.   python primitive_cache_probe.py"""
import statistics as st
import time

import torch

from attnlab.runtime import keep_freed_memory

keep_freed_memory()
torch.manual_seed(0)
op = torch.ops.mkldnn._linear_pointwise


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


for d_in, d_out in [(256, 256), (256, 1024), (1024, 256), (256, 8000)]:
    w, b = torch.randn(d_out, d_in), torch.randn(d_out)
    xs = {m: torch.randn(m, d_in) for m in range(2000, 2000 + 200 * 5, 5)}
    hit_m = 1999
    x_hit = torch.randn(hit_m, d_in)
    op(x_hit, w, b, "none", [], "")
    hits, misses = [], []
    rss0 = rss_mib()
    for m, x in xs.items():  # alternate: a seen shape, then a new one
        t = time.perf_counter(); op(x_hit, w, b, "none", [], ""); hits.append(time.perf_counter() - t)
        t = time.perf_counter(); op(x, w, b, "none", [], ""); misses.append(time.perf_counter() - t)
    grew = rss_mib() - rss0
    again = []
    for m, x in xs.items():  # the same 200 shapes again: hits now, if they are all cached
        t = time.perf_counter(); op(x, w, b, "none", [], ""); again.append(time.perf_counter() - t)
    flop = 2 * 2500 * d_in * d_out
    print(f"[M, {d_in}] x [{d_in}, {d_out}]: seen shape {st.median(hits) * 1e3:.2f} ms, "
          f"new shape {st.median(misses) * 1e3:.2f} ms ({st.median(misses) / st.median(hits):.2f}x), "
          f"those 200 shapes again {st.median(again) * 1e3:.2f} ms; "
          f"RSS +{grew:.0f} MiB for 200 new shapes ({grew / 200 * 1024:.0f} KiB each); "
          f"~{flop / st.median(hits) / 1e9:.0f} GFLOP/s at a hit")
