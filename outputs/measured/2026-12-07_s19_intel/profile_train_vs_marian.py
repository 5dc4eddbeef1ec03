"""Profile attnlab and Marian training steps (fp32, transformer_small, bench batches), interleaved."""
import os, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
dev = torch.device("cpu")
att = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr)
mar = B.variant("marian", B.build_marian(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr, B.marian_logits(B.build_marian(cfg.model, cfg.vocab, dev, cfg.seed)))
mar.optimizer = torch.optim.Adam(mar.model.parameters(), lr=cfg.lr, fused=True)
for v in (att, mar):
    for b in batches[:2]: B.train_step(v, b, crit)
for v in (att, mar):
    t=time.perf_counter(); toks=0
    for b in batches: B.train_step(v, b, crit); toks += sum(B.token_counts(b))
    print(v.name, f"{toks/(time.perf_counter()-t):,.0f} tok/s")
for v in (att, mar):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for b in batches: B.train_step(v, b, crit)
    print(v.name); print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
