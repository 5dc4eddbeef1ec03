import time, torch, statistics
from attnlab import native as N
torch.manual_seed(0)
x = torch.randn(256, 8000) * 3
def t(f, n=50):
    f(); ts=[]
    for _ in range(n):
        s=time.perf_counter(); f(); ts.append(time.perf_counter()-s)
    return statistics.median(ts)*1e3
print("native lst ms", t(lambda: N.log_softmax_topk(x, 8, eos=2)))
print("torch log_softmax ms", t(lambda: torch.log_softmax(x, -1)))
print("torch lsm+topk ms", t(lambda: torch.log_softmax(x, -1).topk(8)))
print("torch max ms", t(lambda: x.max(-1)))
print("torch exp ms", t(lambda: x.exp()))
