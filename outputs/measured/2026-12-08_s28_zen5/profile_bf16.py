"""bf16 autocast: where attnlab's transformer_small fp32 training step goes (torch profiler, the bench's
batches: 8192 tokens, vocab 8000, dropout 0.1), by op and by input shape, after a warm-up."""
import os, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
print("batch shapes (src, tgt):", [(tuple(b.src.shape), tuple(b.tgt_in.shape)) for b in batches])
crit = B.criterion_for(cfg)
model = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
for _ in range(int(os.environ.get("WARM", 1))):
    for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16): B.train_step(model, b, crit)
t = time.perf_counter(); toks = 0
for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16): B.train_step(model, b, crit); toks += sum(B.token_counts(b))
print(f"{toks / (time.perf_counter() - t):,.0f} tokens/s")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16): B.train_step(model, b, crit)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=40, max_shapes_column_width=80))
