"""RSS and page faults over 24 training steps of transformer_small on the bench's batches (8 distinct):
python train_rss.py keep|default."""
import os, sys, time, resource
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
if sys.argv[1] == "keep": keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", "batches=8"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
v = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
def rss(): return int(open(f"/proc/{os.getpid()}/statm").read().split()[1])*4096/2**20
def flt(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t0=time.perf_counter(); toks=0
for i in range(24):
    f=flt(); t=time.perf_counter(); b=batches[i%8]; B.train_step(v, b, crit); dt=time.perf_counter()-t
    if i>=4: toks+=sum(B.token_counts(b))
    if i==3: t0=time.perf_counter()
    if i%4==3: print(sys.argv[1], os.environ.get("THP_MEM_ALLOC_ENABLE","0"), f"step {i} {dt*1e3:.0f} ms faults {flt()-f} rss {rss():.0f} MB")
print(f"{toks/(time.perf_counter()-t0):,.0f} tok/s")
