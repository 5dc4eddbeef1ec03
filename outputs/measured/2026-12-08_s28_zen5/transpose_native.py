"""The native transpose (attnlab.native) against torch's one-thread copy of a transposed matrix, with
and without the column sums: checks every element, then times them interleaved (ms, medians of 30)."""
import ctypes, torch, time, statistics as st
from attnlab import native
native.available()  # builds and loads the kernels
lib = native._library
lib.transpose.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
for rows, cols, ld in [(7552, 256, 256), (13, 5, 7), (8, 8, 8), (17, 24, 30), (7680, 1024, 1024), (100, 16, 16)]:
    base = torch.randn(rows, ld)
    src = base[:, :cols]
    dst = torch.empty(cols, rows); sums = torch.empty(cols)
    lib.transpose(src.data_ptr(), rows, cols, ld, dst.data_ptr(), sums.data_ptr(), 2)
    ok = torch.equal(dst, src.t()); err = ((sums - src.double().sum(0).float()).abs().max()).item()
    print(rows, cols, ld, ok, err, (src.sum(0) - src.double().sum(0).float()).abs().max().item())
for cols in (256, 512, 1024):
    g = torch.randn(7552, cols); dst = torch.empty(cols, 7552); sums = torch.empty(cols)
    def nat(): lib.transpose(g.data_ptr(), 7552, cols, cols, dst.data_ptr(), None, 2)
    def nats(): lib.transpose(g.data_ptr(), 7552, cols, cols, dst.data_ptr(), sums.data_ptr(), 2)
    def tor(): dst.copy_(g.t())
    def tors(): dst.copy_(g.t()); g.sum(0)
    ts = {f.__name__: [] for f in (nat, nats, tor, tors)}
    for _ in range(30):
        for f in (nat, nats, tor, tors):
            a = time.perf_counter(); f(); ts[f.__name__].append(time.perf_counter() - a)
    print(cols, {k: round(st.median(v)*1e3, 3) for k, v in ts.items()})
