"""Needs attention_variants.patch (beside this file) applied: it adds the two switches.
fp32 training step of transformer_small (8192-token batches, dropout 0.1) with the attention
variants of models/attention.py toggled per step, interleaved: SDPA or two matmuls, and
separate or fused (concatenated) Q/K/V projections."""
import sys, time
import torch
from hydra import compose, initialize_config_module
import attnlab.config  # noqa: F401  (resolvers)
from attnlab import bench as B
from attnlab.models import attention as A
from attnlab.runtime import keep_freed_memory

keep_freed_memory(); torch.set_num_threads(2)
with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[2:]])
batches = B.synthetic_batches(cfg); crit = B.criterion_for(cfg)
settings = {"sdpa": (False, False), "matmul": (True, False), "sdpa_fused": (False, True), "matmul_fused": (True, True)}
variants = {}
for name in settings:
    torch.manual_seed(0)
    variants[name] = B.variant(name, B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), 1), 1e-4)
def step(v, b):
    v.optimizer.zero_grad(set_to_none=True)
    loss_sum, _ = crit(v.logits(b), b.tgt_out)
    (loss_sum / b.num_target_tokens).backward(); v.optimizer.step()
    return loss_sum.item()
times = {n: [] for n in settings}
for name, v in variants.items():
    A.MATMUL_FP32, A.FUSED_PROJECTIONS = settings[name]
    torch.manual_seed(1); print(name, "first loss", step(v, batches[0]))
for rnd in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2):
    for b in batches:
        for name, v in variants.items():
            A.MATMUL_FP32, A.FUSED_PROJECTIONS = settings[name]
            t = time.perf_counter(); step(v, b)
            times[name].append((time.perf_counter() - t, sum(B.token_counts(b))))
base = None
for name, ts in times.items():
    rates = sorted(tok / s for s, tok in ts)
    med = rates[len(rates) // 2]; base = base or med
    print(f"{name}: median {med:,.0f} tokens/s (min {rates[0]:,.0f}, max {rates[-1]:,.0f}) {med/base:.3f}x")
# Paired: the same batch, the variants one after another; the median of per-batch ratios.
ref = times["sdpa"]
for name, ts in times.items():
    ratios = sorted(r[0] / t[0] for r, t in zip(ref, ts))
    print(f"{name}: paired speed vs sdpa, median {ratios[len(ratios)//2]:.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f})")
