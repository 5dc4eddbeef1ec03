"""Minor page faults and seconds per transformer_small training step (the bench's batches),
after warm-up: does the step keep faulting fresh pages in?"""
import os, sys, time, resource
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
print("keep_freed_memory:", keep_freed_memory())
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
model = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
for r in range(4):
    for i, b in enumerate(batches):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; t = time.perf_counter()
        B.train_step(model, b, crit)
        dt = time.perf_counter() - t; f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        print(f"round {r} batch {i} tgt {tuple(b.tgt_in.shape)}: {dt*1e3:7.1f} ms, {f1-f0:7d} minor faults, maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")
