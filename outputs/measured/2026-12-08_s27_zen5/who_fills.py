"""Which call zero-fills a [rows, vocab] tensor in the training step? (profiler with stacks)"""
import os, sys
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
    for b in batches: B.train_step(model, b, crit)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True, with_stack=True) as prof:
    for b in batches: B.train_step(model, b, crit)
for e in prof.events():
    if e.name in ("aten::fill_", "aten::zero_", "aten::zeros", "aten::zeros_like", "aten::new_zeros") and e.input_shapes and e.input_shapes[0] and len(e.input_shapes[0]) == 2 and e.input_shapes[0][1] == 8000:
        print(e.name, e.input_shapes, f"{e.cpu_time_total/1e3:.1f} ms")
        print("   parent:", e.cpu_parent.name if e.cpu_parent else None, "| grandparent:", e.cpu_parent.cpu_parent.name if e.cpu_parent and e.cpu_parent.cpu_parent else None)
        for fr in (e.stack or [])[:8]: print("     ", fr)
