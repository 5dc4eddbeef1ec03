"""The training step's weight-gradient matmuls (dW = grad^T @ x, inner dimension = the token
count) by MKL's torch.mm (what attnlab's Linear does now) and by oneDNN's _linear_pointwise,
interleaved call by call; also the forward and input-gradient shapes, for reference."""
import statistics, time, sys
import torch
from attnlab.models.linear import linear_onednn
from attnlab.runtime import keep_freed_memory
print('keep_freed_memory:', keep_freed_memory())

torch.manual_seed(0)
T = int(sys.argv[1]) if len(sys.argv) > 1 else 7552
shapes = [(256, 256), (1024, 256), (256, 1024), (8000, 256)]  # (out, in)

def bench(fn, reps=12):
    fn(); fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return ts

print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T={T}")
for out_f, in_f in shapes:
    x = torch.randn(T, in_f)
    g = torch.randn(T, out_f)
    w = torch.randn(out_f, in_f)
    flops = 2 * T * in_f * out_f
    variants = {
        "dW mkl  g.t().mm(x)": lambda: g.t().mm(x),
        "dW onednn lin(g.t(), x.t())": lambda: linear_onednn(g.t(), x.t()),
        "dW onednn lin(x.t(), g.t()).t()": lambda: linear_onednn(x.t(), g.t()).t().contiguous(),
        "dW mkl x.t().mm(g).t()": lambda: x.t().mm(g).t().contiguous(),
        "fwd onednn lin(x, w)": lambda: linear_onednn(x, w),
        "fwd mkl F.linear": lambda: torch.nn.functional.linear(x, w),
        "dX onednn lin(g, w.t())": lambda: linear_onednn(g, w.t()),
        "dX mkl g.mm(w)": lambda: g.mm(w),
    }
    ref = g.t().mm(x)
    err = (linear_onednn(g.t(), x.t()) - ref).abs().max().item() / ref.abs().max().item()
    res = {k: [] for k in variants}
    for r in range(6):
        for k, fn in variants.items():
            res[k] += bench(fn, 3)
    print(f"[{T},{in_f}] -> {out_f}   (onednn dW rel err {err:.1e})")
    for k, ts in res.items():
        m = statistics.median(ts)
        print(f"   {k:45s} {m*1e3:8.2f} ms  {flops / m / 1e9:7.1f} GFLOP/s")
