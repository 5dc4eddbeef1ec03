# Session 23: the output projection and label-smoothed loss of one fp32 training batch (7,500 x 256
# hidden rows, vocab 8,000): whole (as attnlab trains: logits, native loss, gradient, input and
# weight gradients) against chunks of R rows (logits of R rows at a time, in cache, the weight
# gradient accumulated by addmm). Interleaved, 12 rounds, the first 2 dropped.
import time, statistics, torch
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
from attnlab import native
from attnlab.models.linear import linear_onednn
torch.manual_seed(0)
T, D, V = 7500, 256, 8000
X = torch.randn(T, D); W = torch.randn(V, D) * 0.05; tgt = torch.randint(1, V, (T,))
eps = 0.1
def full():
    logits = linear_onednn(X, W)
    lse, nll, loss = native.smoothed_cross_entropy(logits, tgt, eps, 0)
    g = native.smoothed_cross_entropy_grad(logits, tgt, lse, torch.ones(T), eps)
    dX = linear_onednn(g, W.t())
    dW = g.t().mm(X)
    return loss.sum(), dX, dW
def chunked(R):
    def f():
        dX = torch.empty(T, D); dW = torch.zeros(V, D); tot = 0.0
        for s in range(0, T, R):
            xc = X[s:s+R]; tc = tgt[s:s+R]
            logits = linear_onednn(xc, W)
            lse, nll, loss = native.smoothed_cross_entropy(logits, tc, eps, 0)
            g = native.smoothed_cross_entropy_grad(logits, tc, lse, torch.ones(xc.size(0)), eps)
            torch.mm(g, W, out=dX[s:s+R])
            dW.addmm_(g.t(), xc)
            tot += loss.sum()
        return tot, dX, dW
    return f
fs = {"full": full, "c512": chunked(512), "c1024": chunked(1024), "c2048": chunked(2048)}
ref = full()
for n, f in fs.items():
    o = f(); print(n, [float((a-b).abs().max()) for a, b in zip(o, ref)])
times = {n: [] for n in fs}
for r in range(12):
    for n, f in fs.items():
        t = time.perf_counter(); f(); times[n].append(time.perf_counter() - t)
for n in fs:
    print(n, f"median {1e3*statistics.median(times[n][2:]):.1f} ms", [round(1e3*x) for x in times[n][2:]])
