import os, time, collections, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batch = B.source_batch(cfg, 64)
m = B.build_attnlab(cfg.model, cfg.vocab, torch.device('cpu'), cfg.seed).eval()
acc=collections.defaultdict(list)
real=L._linear_pointwise
REC=[False]
def timed(x,w,*a):
    if not REC[0]: return real(x,w,*a)
    s=time.perf_counter(); y=real(x,w,*a); acc[(tuple(w.shape), w.is_mkldnn, x.shape[0])].append(time.perf_counter()-s); return y
L._linear_pointwise=timed
run=lambda: B.attnlab_search(m, batch, "beam", 32, beam_size=4, length_penalty=0.6)
run(); REC[0]=True; run(); run()
for k,v in sorted(acc.items(), key=lambda kv:-sum(kv[1])):
    if len(v)>5: print(k, len(v), 'mean %.0f us, total %.1f ms'%(sum(v)/len(v)*1e6, sum(v)*1e3/2))
# isolated replay
x=torch.randn(256,1,256)
w=torch.randn(256,256); p=torch.ops.mkldnn._reorder_linear_weight(w,256); b=torch.randn(256)
s=time.perf_counter()
for _ in range(200): real(x,p,b,"none",[],"")
print('isolated 256x256 packed %.0f us'%((time.perf_counter()-s)/200*1e6))
