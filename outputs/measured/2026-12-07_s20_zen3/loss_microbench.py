import time, statistics, torch
from attnlab import native
from attnlab.losses import LabelSmoothedCrossEntropy
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
torch.manual_seed(0)
N, V = 7553, 8000
crit = LabelSmoothedCrossEntropy(0.1, 0)
tgt = torch.randint(0, V, (N,)); tgt[:300] = 0
for dtype in (torch.float32, torch.bfloat16):
    x = (torch.randn(N, V) * 2).to(dtype).requires_grad_()
    def run(on):
        native.use_native_kernels(on)
        x.grad = None
        s = time.perf_counter(); loss, nll = crit(x, tgt); f = time.perf_counter()
        loss.backward(); b = time.perf_counter()
        return f - s, b - f
    run(True); run(False)
    ts = {False: [], True: []}
    for r in range(10):
        for on in ((False, True) if r % 2 else (True, False)):
            ts[on].append(run(on))
    for on in (False, True):
        fw = statistics.median(t[0] for t in ts[on]); bw = statistics.median(t[1] for t in ts[on])
        print(dtype, "native" if on else "torch ", f"forward {fw*1e3:.1f} ms backward {bw*1e3:.1f} ms")
