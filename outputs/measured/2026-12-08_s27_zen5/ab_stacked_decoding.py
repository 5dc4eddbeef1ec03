"""A/B: does stacking the projections (c1441b0) change decoding speed? Greedy (KV cache) and
beam 4 at the bench's settings (transformer_small, batch 64, 32 new tokens), the projection
method swapped before each run, interleaved run by run."""
import os, sys, time, statistics
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models.attention import MultiHeadAttention as MHA
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
stacked = MHA._projected
def one_each(self, x, linears, packing):
    outs = [lin(x) for lin in linears]
    return [packing.unpack(o) for o in outs] if packing is not None else outs
for strategy, kw in (("greedy", {}), ("beam", dict(beam_size=4, length_penalty=0.6))):
    run = lambda: B.attnlab_search(model, batch, strategy, 32, **kw)
    sec = {"one_each": [], "stacked": []}
    for name in sec:
        MHA._projected = stacked if name == "stacked" else one_each; run()
    for r in range(int(os.environ.get("REPEATS", 10))):
        for name in (("one_each", "stacked") if r % 2 == 0 else ("stacked", "one_each")):
            MHA._projected = stacked if name == "stacked" else one_each
            t = time.perf_counter(); run(); sec[name].append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(sec["one_each"], sec["stacked"])]
    q = statistics.quantiles(ratios, n=4)
    print(f"{strategy}: one_each {64 / statistics.median(sec['one_each']):.1f}, stacked {64 / statistics.median(sec['stacked']):.1f} sentences/s; "
          f"stacked speed / one_each per pair {statistics.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f})")
