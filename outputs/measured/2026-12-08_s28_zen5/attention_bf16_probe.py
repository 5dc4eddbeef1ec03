"""bf16 training attention at the bench's shapes, forward + backward: two matmuls with an fp32
softmax (attention._attention_by_matmuls, the bf16 CPU path) against the native kernel
(fp32 arithmetic on bf16 storage), q, k, v as views of one stacked projection, interleaved."""
import statistics, time
import torch
from attnlab.models import attention as A
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
torch.manual_seed(0)
for b, t in [(264, 31), (341, 24), (536, 15)]:
    for causal in (False, True):
        stacked = torch.randn(b, t, 3, 4, 64, dtype=torch.bfloat16, requires_grad=True)
        q, k, v = (stacked[:, :, i].transpose(1, 2) for i in range(3))
        lens = torch.randint(t // 2, t + 1, (b,)); lens[0] = t
        mask = None if causal else (torch.arange(t)[None, :] < lens[:, None])[:, None, None, :]
        g = torch.randn(b, 4, t, 64, dtype=torch.bfloat16)
        def matmuls():
            A._attention_by_matmuls(q, k, v, mask, causal, 0.0, 64)[0].backward(g)
        def nat():
            A._NativeAttention.apply(q, k, v, mask, causal).backward(g)
        ts = {"matmuls": [], "native": []}
        for fn in (matmuls, nat): fn(); fn()
        for _ in range(12):
            for name, fn in (("matmuls", matmuls), ("native", nat)):
                t0 = time.perf_counter(); fn(); ts[name].append(time.perf_counter() - t0)
        s, m = statistics.median(ts["matmuls"]), statistics.median(ts["native"])
        print(f"[{b},4,{t},64] {'causal' if causal else 'padded'}: matmuls {s*1e3:6.2f} ms, native {m*1e3:6.2f} ms, matmuls/native {s/m:.2f}x", flush=True)
