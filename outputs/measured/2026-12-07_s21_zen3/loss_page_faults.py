"""Per training step, attnlab and Marian taking turns: step time and minor page faults, and the
same for the native loss-gradient call inside it (transformer_small, the bench's batches, fp32)."""
import os, time, resource, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B, native
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
dev = torch.device("cpu")
att = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr)
mm = B.build_marian(cfg.model, cfg.vocab, dev, cfg.seed)
mar = B.variant("marian", mm, cfg.lr, B.marian_logits(mm))
orig = native.smoothed_cross_entropy_grad
log = []
def wrapped(*a, **k):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; t = time.perf_counter()
    r = orig(*a, **k)
    log.append((1e3 * (time.perf_counter() - t), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0))
    return r
native.smoothed_cross_entropy_grad = wrapped
for i in range(int(os.environ.get("STEPS", 6))):
    b = batches[i % len(batches)]
    for v in (att, mar):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; t = time.perf_counter()
        B.train_step(v, b, crit)
        dt = time.perf_counter() - t; fl = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        print(f"{v.name:8s} step {dt*1e3:7.0f} ms faults {fl:7d} | loss grad {log[-1][0]:6.1f} ms faults {log[-1][1]:6d}")
