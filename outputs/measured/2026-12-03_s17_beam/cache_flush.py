"""One 256 x 256 linear layer with a packed weight (oneDNN), timed hot, after a 64 MB buffer
was touched (caches flushed), after 20 small ops, and after a 0.5 ms sleep (threads idle)."""
import time

import torch

torch.set_num_threads(2)
real = torch.ops.mkldnn._linear_pointwise
x, w, b = torch.randn(256, 1, 256), torch.randn(256, 256), torch.randn(256)
packed = torch.ops.mkldnn._reorder_linear_weight(w, 256)
big, small = torch.randn(16 * 1024 * 1024), torch.randn(256, 4, 64)
for mode in ["hot", "flush", "smallop", "sleep"]:
    times = []
    for _ in range(100):
        if mode == "flush":
            big.add_(1.0)
        if mode == "smallop":
            for _ in range(20):
                small.mul_(1.0001)
        if mode == "sleep":
            time.sleep(0.0005)
        t = time.perf_counter()
        real(x, packed, b, "none", [], "")
        times.append(time.perf_counter() - t)
    times.sort()
    print(mode, f"median {times[50] * 1e6:.0f} us")
