"""Interleaved A/B of the transformer_small fp32 training step: Q/K/V (and cross-attention K/V)
projected separately against by one matmul over the concatenated weights
(tried_fused_projections.patch, applied first; not kept). Each variant has its own random stream."""
import os, statistics, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import attention as A
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 12
bf16 = "bf16" in sys.argv[2:]
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *[a for a in sys.argv[2:] if "=" in a]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
dev = torch.device("cpu")
variants = {v: B.variant(v, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for v in ("separate", "fused")}
rng = {v: torch.get_rng_state() for v in variants}
def step(v, b):
    A.FUSED_PROJECTIONS = v == "fused"
    torch.set_rng_state(rng[v])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        B.train_step(variants[v], b, crit)
    rng[v] = torch.get_rng_state()
for r in range(2):
    for v in variants: step(v, batches[r % 4])
times = {v: [] for v in variants}
for r in range(repeats):
    for v in (("separate", "fused") if r % 2 == 0 else ("fused", "separate")):
        t = time.perf_counter(); step(v, batches[r % 4]); times[v].append(time.perf_counter() - t)
ratios = [a / b for a, b in zip(times["separate"], times["fused"])]
diff = max((p - q).abs().max().item() for p, q in zip(variants["separate"].model.parameters(), variants["fused"].model.parameters()))
print(f"{'bf16' if bf16 else 'fp32'} train step: separate {statistics.median(times['separate'])*1e3:.0f} ms, fused {statistics.median(times['fused'])*1e3:.0f} ms; "
      f"median separate/fused {statistics.median(ratios):.3f}x (min {min(ratios):.3f}, max {max(ratios):.3f}, {repeats} repeats); max param diff {diff:.2e}")
