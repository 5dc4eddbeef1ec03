"""fp32 training attention, forward + backward, at the bench's batch shapes (and longer):
SDPA's CPU flash kernel against the native kernel (attnlab.native.training_attention), with
q, k, v as the model makes them (views of one stacked [B, T, 3, h, d] projection), interleaved."""
import statistics, time, sys
import torch
import torch.nn.functional as F
from attnlab import native
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
torch.manual_seed(0)

class Native(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, allowed, causal):
        out, lse = native.training_attention(q, k, v, allowed, causal)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.allowed, ctx.causal = allowed, causal
        return out
    @staticmethod
    def backward(ctx, g):
        q, k, v, out, lse = ctx.saved_tensors
        return (*native.training_attention_grad(q, k, v, out, lse, g, ctx.allowed, ctx.causal), None, None)

shapes = [(264, 31), (341, 24), (536, 15), (128, 64), (64, 128), (32, 256)]
for b, t in shapes:
    for causal in (False, True):
        stacked = torch.randn(b, t, 3, 4, 64, requires_grad=True)
        q, k, v = (stacked[:, :, i].transpose(1, 2) for i in range(3))
        lens = torch.randint(t // 2, t + 1, (b,)); lens[0] = t
        mask = None if causal else (torch.arange(t)[None, :] < lens[:, None])[:, None, None, :]
        g = torch.randn(b, 4, t, 64)
        def sdpa():
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).backward(g)
        def nat():
            Native.apply(q, k, v, mask, causal).backward(g)
        ts = {"sdpa": [], "native": []}
        for fn in (sdpa, nat): fn(); fn()
        for _ in range(12):
            for name, fn in (("sdpa", sdpa), ("native", nat)):
                t0 = time.perf_counter(); fn(); ts[name].append(time.perf_counter() - t0)
        s, m = statistics.median(ts["sdpa"]), statistics.median(ts["native"])
        print(f"[{b},4,{t},64] {'causal' if causal else 'padded'}: sdpa {s*1e3:6.2f} ms, native {m*1e3:6.2f} ms, sdpa/native {s/m:.2f}x", flush=True)
