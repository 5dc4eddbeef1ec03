"""Transposed copies of a [rows, width] fp32 matrix into [width, rows]: torch's own path
(single-threaded blocked transpose) against alternatives."""
import time, torch, statistics as st
torch.manual_seed(0)
rows = 7552
def t(fn, n=30):
    for _ in range(3): fn()
    ts=[]
    for _ in range(n):
        a=time.perf_counter(); fn(); ts.append(time.perf_counter()-a)
    return st.median(ts)*1e3
for width in (256, 512, 1024, 8000):
    g = torch.randn(rows, width)
    out = torch.empty(width, rows)
    def plain(): out.copy_(g.t())
    half = width // 2
    def split3d(): out.view(2, half, rows).copy_(g.t().view(2, half, rows))
    blocks = 8
    def split3d8(): out.view(blocks, width//blocks, rows).copy_(g.t().view(blocks, width//blocks, rows))
    r2 = rows // 2
    def rowsplit(): out.view(width, 2, r2).copy_(g.view(2, r2, width).permute(2,0,1))
    assert torch.equal((split3d(), out)[1], g.t()); assert torch.equal((rowsplit(), out)[1], g.t())
    mb = g.numel()*4/1e6
    res = {n: t(f) for n,f in [("plain",plain),("split3d",split3d),("split3d8",split3d8),("rowsplit",rowsplit)]}
    print(width, f"{mb:.1f} MB", " ".join(f"{k} {v:.3f} ms ({2*mb/v:.1f} GB/s)" for k,v in res.items()))
