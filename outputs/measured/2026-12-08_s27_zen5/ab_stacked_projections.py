"""A/B: fp32 training step with self-attention's Q, K, V (and cross-attention's K, V) as one
stacked matmul (after) or one matmul each (before), interleaved step by step on the bench's
batches. Two copies of the same model; the projection method is swapped before each step.
Usage: python ab_stacked_projections.py [model=...] [ROUNDS env]"""
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
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
stacked = MHA._projected
def one_each(self, x, linears, packing):
    outs = [lin(x) for lin in linears]
    return [packing.unpack(o) for o in outs] if packing is not None else outs
variants = {name: B.variant(name, B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
            for name in ("one_each", "stacked")}
def step(name, b):
    MHA._projected = stacked if name == "stacked" else one_each
    t = time.perf_counter(); B.train_step(variants[name], b, crit); return time.perf_counter() - t
for _ in range(2):
    for b in batches:
        for name in variants: step(name, b)
# same losses? one more step each on batch 0 from equal weights is not checked here: tests do that
rounds = int(os.environ.get("ROUNDS", 6))
sec = {n: [] for n in variants}; toks = []
for r in range(rounds):
    for i, b in enumerate(batches):
        order = list(variants) if (r + i) % 2 == 0 else list(variants)[::-1]
        for name in order: sec[name].append(step(name, b))
        toks.append(sum(B.token_counts(b)))
for n, s in sec.items():
    rates = [t / x for t, x in zip(toks, s)]
    print(f"{n:10s} median {statistics.median(rates):8,.0f} tokens/s (min {min(rates):,.0f}, max {max(rates):,.0f})")
ratios = [a / b for a, b in zip(sec["one_each"], sec["stacked"])]
q = statistics.quantiles(ratios, n=4)
print(f"stacked speed / one_each, per step pair: median {statistics.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} pairs)")
