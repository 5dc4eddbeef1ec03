"""Op-level profile of one beam-search batch (beam 4, batch 64, 32 tokens, transformer_small,
the bench's shapes): python profile_beam.py [bf16] [hydra overrides...]"""
import os, sys, time
import torch
from hydra import compose, initialize_config_dir
import attnlab.decoding as D
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
args = sys.argv[1:]
bf16 = bool(args) and args[0] == "bf16"
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *(args[1:] if bf16 else args)])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
model = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
kw = dict(bos_id=B.BOS, eos_id=B.EOS, beam_size=4, length_penalty=0.6, max_len_a=0, max_len_b=31, min_len=31)
def run():
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return D.beam_search(model, batch.src, batch.src_pad_mask, **kw)
for _ in range(2):
    run()
t = time.perf_counter(); run(); print(f"{'bf16' if bf16 else 'fp32'}: {(time.perf_counter() - t) * 1e3:.0f} ms/batch")
with torch.profiler.profile(record_shapes=True) as prof:
    run()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=30, max_shapes_column_width=70))
