"""The fp32 training step's linear-layer matmuls (7553 tokens, transformer_small, 2 threads):
forward x @ W^T, input gradient g @ W, weight gradient g^T @ x, each by oneDNN
(mkldnn._linear_pointwise, what attnlab's Linear runs on AMD) and by MKL (torch.mm, what
F.linear runs); interleaved, GFLOP/s medians of 12 rounds."""
import statistics, time
import torch
torch.manual_seed(0)
lin = torch.ops.mkldnn._linear_pointwise
n = 7553
def one(x, w): return lin(x, w, None, "none", [], "")
total = {"oneDNN": 0.0, "MKL": 0.0}
for k, o in [(256, 256), (256, 1024), (1024, 256), (256, 8000)]:
    x = torch.randn(n, k); w = torch.randn(o, k) * 0.05; g = torch.randn(n, o)
    cases = {
        ("forward", "oneDNN"): lambda: one(x, w),
        ("forward", "MKL"): lambda: torch.mm(x, w.t()),
        ("input grad", "oneDNN"): lambda: one(g, w.t()),
        ("input grad", "MKL"): lambda: torch.mm(g, w),
        ("weight grad", "oneDNN"): lambda: one(g.t(), x.t()),
        ("weight grad", "MKL"): lambda: torch.mm(g.t(), x),
    }
    times = {c: [] for c in cases}
    for f in cases.values(): f(); f()
    for _ in range(12):
        for c, f in cases.items():
            t = time.perf_counter(); f(); times[c].append(time.perf_counter() - t)
    flops = 2 * n * k * o
    for what in ("forward", "input grad", "weight grad"):
        a, m = statistics.median(times[(what, "oneDNN")]), statistics.median(times[(what, "MKL")])
        total["oneDNN"] += a; total["MKL"] += m
        print(f"[{n},{k}] x [{k},{o}] {what:11s}: oneDNN {a*1e3:7.2f} ms {flops/a/1e9:6.1f} GFLOP/s | MKL {m*1e3:7.2f} ms {flops/m/1e9:6.1f} GFLOP/s | MKL/oneDNN speed {a/m:.2f}x")
print({k: round(v * 1e3, 1) for k, v in total.items()}, "ms, one of each")
