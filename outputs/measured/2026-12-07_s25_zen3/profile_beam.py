"""Where attnlab's fp32 beam search goes (the bench's beam section: transformer_small, beam 4,
32 new tokens, batch 64, vocab 8000), by op and input shape, after a warm-up run."""
import os, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
b = cfg.beam
batch = B.source_batch(cfg, b.batch_size)
print("source", tuple(batch.src.shape))
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
run = lambda: B.attnlab_search(model, batch, "beam", b.new_tokens, beam_size=b.beam_size, length_penalty=b.length_penalty)
run()
for _ in range(3):
    t = time.perf_counter(); run(); print(f"{b.batch_size / (time.perf_counter() - t):.1f} sentences/s")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    run()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=40, max_shapes_column_width=80))
