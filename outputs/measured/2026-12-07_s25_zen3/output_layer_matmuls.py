"""The output layer's three matmuls at a bench batch's shape ([7553 tokens, 256] x [8000, 256],
fp32, 2 threads): MKL (torch.mm) against oneDNN (mkldnn._linear_pointwise), interleaved; GFLOP/s
medians of 15 rounds."""
import statistics, time
import torch
torch.manual_seed(0)
n, d, v = 7553, 256, 8000
x = torch.randn(n, d); w = torch.randn(v, d) * 0.05; g = torch.randn(n, v)
lin = torch.ops.mkldnn._linear_pointwise
cases = {
    "forward x @ W^T, MKL mm": lambda: torch.mm(x, w.t()),
    "forward x @ W^T, oneDNN linear": lambda: lin(x, w, None, "none", [], ""),
    "input grad g @ W, MKL mm": lambda: torch.mm(g, w),
    "input grad g @ W, oneDNN linear (W^T contiguous)": (lambda wt=w.t().contiguous(): lin(g, wt, None, "none", [], "")),
    "weight grad g^T @ x, MKL mm": lambda: torch.mm(g.t(), x),
}
flops = 2 * n * d * v
times = {k: [] for k in cases}
for f in cases.values(): f(); f()
for _ in range(15):
    for k, f in cases.items():
        t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
for k, ts in times.items():
    r = [flops / t / 1e9 for t in ts]
    print(f"{k:50s} median {statistics.median(r):6.1f} GFLOP/s  (min {min(r):6.1f}, max {max(r):6.1f})")
