"""fp32 training step with SDPA's CPU kernel (as attnlab does now) against the attention spelled
out as two matmuls and an fp32 softmax (attention._attention_by_matmuls, the bf16 path), in one
process, taking turns, the order alternating every repeat (transformer_small, the bench's
8192-token batches, dropout 0.1). Prints tokens/s medians and the median per-step ratio.

    python outputs/measured/2026-12-07_s21_zen3/ab_attention_fp32.py [repeats]
"""
import os, statistics, sys, time, types
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from attnlab import bench as B
from attnlab.models import attention as A
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 12


def by_matmuls(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    if not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)
    return A._attention_by_matmuls(q, k, v, attn_mask, is_causal, dropout_p, q.size(-1))[0]


shims = {"sdpa": F, "matmuls": types.SimpleNamespace(**{**vars(F), "scaled_dot_product_attention": by_matmuls})}
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
dev = torch.device("cpu")
variants = {n: B.variant(n, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in shims}
tokens = {n: [] for n in shims}
for r in range(repeats + 2):
    order = list(shims) if r % 2 == 0 else list(reversed(list(shims)))
    b = batches[r % len(batches)]
    for n in order:
        A.F = shims[n]
        t = time.perf_counter()
        B.train_step(variants[n], b, crit)
        dt = time.perf_counter() - t
        if r >= 2:
            tokens[n].append(sum(B.token_counts(b)) / dt)
A.F = F
ratios = [m / s for m, s in zip(tokens["matmuls"], tokens["sdpa"])]
for n, t in tokens.items():
    print(f"{n:8s} median {statistics.median(t):8,.0f} tokens/s  (min {min(t):,.0f}, max {max(t):,.0f})")
q = statistics.quantiles(ratios, n=4)
print(f"matmuls / sdpa per step: median {statistics.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} steps)")
