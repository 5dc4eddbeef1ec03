"""Where attnlab's beam search spends its time: bench's beam setting (batch 64, beam 4, 32 new
tokens, transformer_small, fp32, 2 threads), timed and then profiled by torch.profiler."""
import time
import torch
from hydra import compose, initialize_config_module
import attnlab.config  # noqa: F401
from attnlab import bench as B

torch.set_num_threads(2)
with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
b = cfg.beam
batch = B.source_batch(cfg, b.batch_size)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
run = lambda: B.attnlab_search(model, batch, "beam", b.new_tokens, beam_size=b.beam_size, length_penalty=b.length_penalty)
run()
times = []
for _ in range(5):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
print("sentences/s", sorted(b.batch_size / t for t in times))
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    run()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
