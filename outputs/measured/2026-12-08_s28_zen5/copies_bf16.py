"""The copies (aten::copy_) of a bf16-autocast transformer_small training step, by caller chain and shape."""
import os, sys
from collections import Counter, defaultdict
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
model = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
for _ in range(3):
    for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16): B.train_step(model, b, crit)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16): B.train_step(model, b, crit)
tot = defaultdict(float); n = Counter()
for e in prof.events():
    if e.name == "aten::copy_":
        chain = []
        p = e.cpu_parent
        while p is not None and len(chain) < 3:
            chain.append(p.name); p = p.cpu_parent
        key = (" < ".join(chain), str(e.input_shapes[0]))
        tot[key] += e.cpu_time_total / 1e3; n[key] += 1
for k, v in sorted(tot.items(), key=lambda kv: -kv[1])[:15]:
    print(f"{v:8.1f} ms {n[k]:4d}x  {k[1]:22s} {k[0]}")
