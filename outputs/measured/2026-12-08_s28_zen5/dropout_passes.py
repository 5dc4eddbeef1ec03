"""Applying a dropout mask to a [7680, 256] fp32 tensor (the bench's activations): attnlab's
mul-by-bool (which converts the mask to fp32 first) against fewer passes."""
import time, statistics as st, torch
from attnlab.models.dropout import keep_mask
def timeit(fn, n=40):
    for _ in range(5): fn()
    ts = []
    for _ in range(n):
        a = time.perf_counter(); fn(); ts.append(time.perf_counter() - a)
    return st.median(ts) * 1e3
for shape in [(7680, 256), (7680, 1024)]:
    x = torch.randn(shape)
    keep, k = keep_mask(x.shape, 0.1, x.device); s = 1 / k
    drop = ~keep
    ref = torch.mul(x, keep).mul_(s)
    variants = {
        "mul_bool_then_scale (now)": lambda: torch.mul(x, keep).mul_(s),
        "where_then_scale": lambda: torch.where(keep, x, 0.0).mul_(s),
        "scale_then_masked_fill": lambda: x.mul(s).masked_fill_(drop, 0.0),
        "where_only": lambda: torch.where(keep, x, 0.0),
        "mask_only (keep_mask)": lambda: keep_mask(x.shape, 0.1, x.device),
    }
    for name, fn in variants.items():
        out = fn()
        if isinstance(out, torch.Tensor) and name != "where_only":
            assert torch.equal(out, ref), name
        print(shape, f"{name:28s} {timeit(fn):.3f} ms")
