"""Minor page faults and time of each fp32 teacher-forced training step of an RNN (the bench's
rnn section batches: 8192 tokens, vocab 8000), with keep_freed_memory on, after warm-up rounds:
do steady-state steps still take fresh pages from the OS?"""
import os, resource, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep = os.environ.get("KEEP", "1") == "1"
if keep:
    keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
rnn = B.variant("attnlab", B.build_attnlab(cfg.rnn_model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
print("keep_freed_memory", keep, "rnn_model", cfg.rnn_model._target_)
for rnd in range(4):
    for i, b in enumerate(batches):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        B.train_step(rnn, b, crit)
        dt = time.perf_counter() - t
        f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"round {rnd} batch {i} {tuple(b.src.shape)}: {dt*1000:7.0f} ms, {f1-f0:8d} minor faults, max RSS {rss:,.0f} MiB", flush=True)
