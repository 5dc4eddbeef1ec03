# Interleaved A/B of bf16 (autocast) beam search, bench shape (batch 64, beam 4, 32 new tokens):
# use_onednn(False) (F.linear, no packed weights) against use_onednn(True) (packed weights). A copy
# of 2026-12-03_s16_train/ab_beam_onednn.py with the search under bf16 autocast.
import os, sys, statistics, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import linear as L
import attnlab.decoding as D
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
model = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
kw = dict(bos_id=B.BOS, eos_id=B.EOS, beam_size=4, length_penalty=0.6, max_len_a=0, max_len_b=31, min_len=31)
def run(name):
    L.use_onednn(name == "onednn")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return D.beam_search(model, batch.src, batch.src_pad_mask, **kw)
ha, hb = run("mkl"), run("onednn")
print(f"identical best hypotheses: {sum(a[0].tokens == b[0].tokens for a, b in zip(ha, hb))}/64")
seconds, _ = B.interleave(["mkl", "onednn"], 1, int(os.environ.get("REPEATS", 6)), lambda n, r: run(n), dev)
for n in seconds:
    rates = [64 / s for s in seconds[n]]
    print(n, f"median {statistics.median(rates):.1f} sentences/s", [round(r, 1) for r in rates])
