"""The backward of dropping the rounded rows' logits ([7936, 8000] -> [7900, 8000], 245 MB):
a slice's own backward (zeros, then a copy) against Packing.real's _FirstRows (empty, copy,
zeros in the dropped rows only). Medians of 10 after warm-up, each twice, alternating."""
import time
import torch
from attnlab.models.attention import Packing
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
x = torch.randn(7936, 8000, requires_grad=True)
g = torch.randn(7900, 8000)
packing = Packing.with_rows(torch.arange(7900), 1, 7936, 7936)


def sliced():
    x.grad = None
    x[:7900].backward(g)


def first_rows():
    x.grad = None
    packing.real(x).backward(g)


for name, fn in [("slice backward", sliced), ("_FirstRows", first_rows)] * 2:
    fn(); ts = []
    for _ in range(10):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    print(f"{name:15s} {sorted(ts)[5] * 1e3:.1f} ms")
