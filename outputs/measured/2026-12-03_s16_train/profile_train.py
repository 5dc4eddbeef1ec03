"""Profile attnlab's transformer_small training step on the bench's batches (8192 tokens, fp32
unless argv[1] == bf16). Prints the top ops by self CPU time."""
import os, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
precision = sys.argv[1] if len(sys.argv) > 1 else "32"
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[2:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed)
v = B.variant("attnlab", model, cfg.lr)
def step(b):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        B.train_step(v, b, crit)
for b in batches[:2]:
    step(b)
t = time.perf_counter(); toks = 0
for b in batches[:4]:
    step(b); toks += sum(B.token_counts(b))
el = time.perf_counter() - t
print(f"{precision}: {toks/el:,.0f} tokens/s, {el/4*1000:.0f} ms/step")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches[:4]:
        step(b)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=80, max_name_column_width=30, max_shapes_column_width=80))
