# Interleaved A/B of greedy search: old code (attnlab_old) vs the working tree, same weights.
import os, sys, statistics, torch
sys.path.insert(0, os.environ.get("OLD_DIR", "/tmp/old"))
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
import attnlab_old.decoding as OD, attnlab_old.models.transformer as OT
import attnlab.decoding as ND
precision = sys.argv[1] if len(sys.argv) > 1 else "32"
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
new = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
args = {k: v for k, v in cfg.model.items() if k != "_target_"}
old = OT.Transformer(src_vocab_size=cfg.vocab, tgt_vocab_size=cfg.vocab, pad_id=0, **args).eval()
old.load_state_dict(new.state_dict())
kw = dict(bos_id=B.BOS, eos_id=B.EOS, max_len_a=0, max_len_b=31, min_len=31)
def run(dec, m):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return dec.greedy_search(m, batch.src, batch.src_pad_mask, **kw)
runs = {"old": lambda: run(OD, old), "new": lambda: run(ND, new)}
ho, hn = runs["old"](), runs["new"]()
print(f"identical hypotheses: {sum(a.tokens == b.tokens for a, b in zip(ho, hn))}/64")
seconds, _ = B.interleave(list(runs), 1, int(os.environ.get("REPEATS", 6)), lambda n, r: runs[n](), dev)
for n in runs:
    rates = [64 / s for s in seconds[n]]
    print(n, f"median {statistics.median(rates):.1f} sentences/s", [round(r, 1) for r in rates])
