"""Dropout forward + backward of a [7680, 256] fp32 tensor (the bench's activations): the native
Philox kernel (attnlab.models.dropout.dropout) against the torch-generator path it replaced
(_MaskedScale), interleaved, medians of 30 (ms)."""
import time, statistics as st
import torch
from attnlab.models import dropout as D
torch.manual_seed(0)
x = torch.randn(7680, 256, requires_grad=True)
g = torch.randn(7680, 256)
def native(): D.dropout(x, 0.1, True).backward(g)
def torch_mask(): D._MaskedScale.apply(x, 0.1).backward(g)
ts = {"native": [], "torch_mask": []}
for _ in range(3): native(); torch_mask()
for _ in range(30):
    for n, f in (("native", native), ("torch_mask", torch_mask)):
        a = time.perf_counter(); f(); ts[n].append(time.perf_counter() - a)
print({k: round(st.median(v) * 1e3, 3) for k, v in ts.items()})
