import os, sys, time, torch, collections
from hydra import compose, initialize_config_dir
from attnlab import bench as B
import attnlab.decoding as D
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
m = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
acc = collections.Counter()
def wrap(obj, name, label):
    f = getattr(obj, name)
    def g(*a, **k):
        t = time.perf_counter(); r = f(*a, **k); acc[label] += time.perf_counter() - t; return r
    setattr(obj, name, g)
wrap(m, "decode_step", "decode_step"); wrap(m, "reorder_decoder_state", "reorder_state"); wrap(m, "encode", "encode")
wrap(m, "output_proj", "output_proj") if False else None
wrap(D, "_next_log_probs", "log_softmax+constraints"); wrap(D, "_best_extensions", "best_extensions")
bf16 = len(sys.argv) > 1
def run():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return B.attnlab_search(m, batch, "beam", 32, beam_size=4, length_penalty=0.6)
run(); acc.clear()
t = time.perf_counter()
for _ in range(5): run()
total = (time.perf_counter() - t) / 5
print(f"total {total*1e3:.0f} ms/batch")
for k, v in acc.items(): print(f"  {k:28s} {v/5*1e3:7.1f} ms")
