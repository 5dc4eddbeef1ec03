# Session 23: fp32 GEMM rates (GFLOP/s, median of 10 calls) at a transformer_small training step's
# shapes (7,500 token rows) and a beam step's (256 rows), 2 threads: MKL (torch.mm), oneDNN
# (attnlab's linear path) and OpenBLAS 0.3.31 (numpy's, Haswell kernels on this Zen 3).
# Each library's 10 calls run in a block, after a 1 s pause: interleaved call by call
# (INTERLEAVE=1, matmul_rates_interleaved.log) the two thread pools contend, OpenBLAS's threads
# spinning while torch's OpenMP threads want the cores, and torch's rates collapse.
import os, time, statistics, numpy as np, torch
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
from attnlab.models.linear import linear_onednn
torch.manual_seed(0)
T = 7500
def rates(fs, fl, rounds=10):
    times = {n: [] for n in fs}
    if os.environ.get("INTERLEAVE"):
        for f in fs.values(): f(); f()
        for r in range(rounds):
            for n in list(fs)[r % len(fs):] + list(fs)[:r % len(fs)]:
                t = time.perf_counter(); fs[n](); times[n].append(time.perf_counter() - t)
    else:
        for n, f in fs.items():
            time.sleep(1.0); f(); f()
            for _ in range(rounds):
                t = time.perf_counter(); f(); times[n].append(time.perf_counter() - t)
    return {n: round(fl / statistics.median(ts) / 1e9, 1) for n, ts in times.items()}
for (m,k,n) in [(T,256,256),(T,1024,256),(T,256,1024),(T,256,8000),(T,8000,256),(256,T,256),(1024,T,256),(256,T,1024),(8000,T,256),(2048,2048,2048),(256,256,256),(256,256,8000)]:
    a = torch.randn(m,k); b = torch.randn(k,n); fl=2*m*k*n
    an, bn = a.numpy(), b.numpy(); out = np.empty((m,n), np.float32)
    r = rates({"torch.mm": lambda: a.mm(b),
               "onednn": lambda: linear_onednn(a, b.t()),
               "openblas": lambda: np.matmul(an, bn, out=out)}, fl)
    print(m,k,n, r, flush=True)
