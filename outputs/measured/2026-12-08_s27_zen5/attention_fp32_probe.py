"""fp32 training attention at the bench's batch shapes: SDPA's CPU flash kernel against the
spelled-out matmuls (_attention_by_matmuls), forward + backward, interleaved."""
import statistics, time
import torch
import torch.nn.functional as F
from attnlab.models.attention import _attention_by_matmuls
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
torch.manual_seed(0)
for b, t in [(264, 31), (341, 24), (536, 15)]:
    for causal in (False, True):
        q, k, v = (torch.randn(b, 4, t, 64, requires_grad=True) for _ in range(3))
        lens = torch.randint(t // 2, t + 1, (b,)); lens[0] = t
        mask = None if causal else (torch.arange(t)[None, :] < lens[:, None])[:, None, None, :]
        g = torch.randn(b, 4, t, 64)
        def sdpa():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
            out.backward(g)
        def mm():
            out, _ = _attention_by_matmuls(q, k, v, mask, causal, 0.0, 64)
            out.backward(g)
        ts = {"sdpa": [], "matmuls": []}
        for fn in (sdpa, mm): fn(); fn()
        for _ in range(15):
            for name, fn in (("sdpa", sdpa), ("matmuls", mm)):
                t0 = time.perf_counter(); fn(); ts[name].append(time.perf_counter() - t0)
        s, m = statistics.median(ts["sdpa"]), statistics.median(ts["matmuls"])
        print(f"[{b},4,{t},64] {'causal' if causal else 'padded'}: sdpa {s*1e3:6.2f} ms, matmuls {m*1e3:6.2f} ms, sdpa/matmuls {s/m:.2f}x")
