"""A beam step's matmuls (256 rows = 64 sentences x beam 4, transformer_small, fp32, 2 threads):
oneDNN with the weight packed (what beam search runs), oneDNN unpacked, MKL torch.addmm/mm;
interleaved, GFLOP/s medians of 40 rounds."""
import statistics, time
import torch
torch.manual_seed(0)
lin = torch.ops.mkldnn._linear_pointwise
reorder = torch.ops.mkldnn._reorder_linear_weight
rows = 256
for k, n, bias in [(256, 8000, False), (256, 256, True), (256, 1024, True), (1024, 256, True)]:
    x = torch.randn(rows, k); w = torch.randn(n, k) * 0.05; b = torch.randn(n) if bias else None
    wp = reorder(w, rows); wt = w.t().contiguous()
    cases = {
        "oneDNN packed": lambda: lin(x, wp, b, "none", [], ""),
        "oneDNN": lambda: lin(x, w, b, "none", [], ""),
        "MKL addmm W^T view": (lambda: torch.addmm(b, x, w.t())) if bias else (lambda: torch.mm(x, w.t())),
        "MKL addmm W^T contiguous": (lambda: torch.addmm(b, x, wt)) if bias else (lambda: torch.mm(x, wt)),
    }
    times = {c: [] for c in cases}
    for f in cases.values(): f(); f()
    for _ in range(40):
        for c, f in cases.items():
            t = time.perf_counter(); f(); times[c].append(time.perf_counter() - t)
    flops = 2 * rows * k * n
    ref = statistics.median(times["oneDNN packed"])
    for c, ts in times.items():
        m = statistics.median(ts)
        print(f"[{rows},{k}] x [{k},{n}] {c:26s} {m*1e3:7.3f} ms  {flops/m/1e9:6.1f} GFLOP/s  ({ref/m:.2f}x packed)")
