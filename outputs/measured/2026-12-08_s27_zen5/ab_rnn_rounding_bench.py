"""A/B at the bench's rnn section (rnn_luong, the bench's synthetic 8,192-token batches, fp32):
the output layer's rows as they are or rounded, two copies of one model, interleaved step by
step. The bench's step-by-step ratio over the plain LSTM was 1.39x at c1441b0, 1.27x at a401535."""
import os, sys, time, statistics
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import rnn
from attnlab.models.attention import packing_for
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
variants = {name: B.variant(name, B.build_attnlab(cfg.rnn_model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
            for name in ("as_is", "rounded")}
def step(name, b):
    rnn.packing_for = packing_for if name == "rounded" else (lambda x: False)
    t = time.perf_counter(); B.train_step(variants[name], b, crit); return time.perf_counter() - t
for _ in range(2):
    for b in batches:
        for name in variants: step(name, b)
rounds = int(os.environ.get("ROUNDS", 8))
sec = {n: [] for n in variants}; toks = []
for r in range(rounds):
    for i, b in enumerate(batches):
        order = list(variants) if (r + i) % 2 == 0 else list(variants)[::-1]
        for name in order: sec[name].append(step(name, b))
        toks.append(sum(B.token_counts(b)))
for n, s in sec.items():
    rates = [t / x for t, x in zip(toks, s)]
    print(f"{n:8s} median {statistics.median(rates):8,.0f} tokens/s (min {min(rates):,.0f}, max {max(rates):,.0f})")
ratios = [a / b for a, b in zip(sec["as_is"], sec["rounded"])]
q = statistics.quantiles(ratios, n=4)
print(f"rounded speed / as_is, per step pair: median {statistics.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} pairs)")
