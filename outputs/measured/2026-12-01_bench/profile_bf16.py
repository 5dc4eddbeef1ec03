"""Profile transformer_small training steps (2560-token batches) under fp32 and bf16 autocast."""
import sys, time
import torch
from hydra import compose, initialize_config_module
import attnlab.config  # resolvers
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
torch.set_num_threads(2)
with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
    cfg = compose("bench", overrides=["max_tokens=2560", "~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
for precision in sys.argv[1:] or ["32-true", "bf16-mixed"]:
    model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), 1)
    v = B.variant("attnlab", model, 1e-4)
    ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    def step(b):
        v.optimizer.zero_grad(set_to_none=True)
        with ctx():
            loss_sum, _ = crit(v.logits(b), b.tgt_out)
        (loss_sum / b.num_target_tokens).backward()
        v.optimizer.step()
    for b in batches[:2]:
        step(b)
    t = time.perf_counter(); n = 0; toks = 0
    for b in batches * 2:
        step(b); n += 1; toks += sum(B.token_counts(b))
    el = time.perf_counter() - t
    print(f"{precision}: {toks/el:,.0f} tokens/s, {el/n*1000:.0f} ms/step")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for b in batches:
            step(b)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
