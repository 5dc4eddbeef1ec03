"""Page faults and RSS of a loop that allocates and frees one 7553 x 8000 fp32 tensor (the size of
a training batch's logits): python alloc_loop.py default|keep (keep: attnlab's keep_freed_memory())."""
import torch, time, resource, sys, os
from attnlab.runtime import keep_freed_memory
if sys.argv[1] == "keep": print(keep_freed_memory())
def flt(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rss(): return int(open(f"/proc/{os.getpid()}/statm").read().split()[1])*4096/2**20
for i in range(10):
    f=flt(); t=time.perf_counter(); z = torch.empty(7553,8000).fill_(1.0); t2=time.perf_counter()-t
    del z
    print(sys.argv[1], f"empty+fill {t2*1e3:.0f} ms faults {flt()-f} rss {rss():.0f} MB")
