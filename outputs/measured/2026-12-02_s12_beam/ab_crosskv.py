# A/B in one process, interleaved: beam search (beam 4, batch 64, 32 tokens) with the cross-attention
# keys/values kept on the encoder output (new) against also copying them at every beam step, as the
# code before did (the copy's result is dropped; its cost is what the old reorder paid).
import os, statistics, types, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
new = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
old = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
seen = {}
init, reorder = old.init_decoder_state, old.reorder_decoder_state
def init_remember(enc):
    seen["enc"] = enc
    return init(enc)
def reorder_also_cross(state, index):
    seen["copies"] = [c.index_select(index) for c in seen["enc"].cross_kv]
    return reorder(state, index)
old.init_decoder_state, old.reorder_decoder_state = init_remember, reorder_also_cross
runs = {n: (lambda m=m: B.attnlab_search(m, batch, "beam", 32, beam_size=4, length_penalty=0.6)) for n, m in (("old", old), ("new", new))}
seconds, _ = B.interleave(list(runs), 1, 6, lambda n, r: runs[n](), dev)
for n in runs:
    rates = [64 / s for s in seconds[n]]
    print(n, f"median {statistics.median(rates):.1f} sentences/s", [round(r, 1) for r in rates])
