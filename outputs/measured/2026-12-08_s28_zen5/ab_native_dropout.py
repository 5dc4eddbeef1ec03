"""A/B: fp32 training step with dropout's mask from torch's one-thread generator, applied by
torch ops and kept for the backward (before), or from Philox bits drawn by the native kernel on
every thread, applied in the same pass and drawn again in the backward (after), interleaved step by step on the bench's batches (8192-token, vocab
8000, dropout 0.1). Two copies of the same model, one per variant; the switch is flipped
before each step. Usage: [MODEL_KEY=rnn_model] [PRECISION=bf16] python ab_native_dropout.py [ROUNDS env]"""
import os, sys, time, statistics
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B, native
from attnlab.models import dropout as D, linear as L
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
print("model", os.environ.get("MODEL_KEY", "model"), cfg[os.environ.get("MODEL_KEY", "model")].get("_target_"), "| oneDNN weight grads:", L._fp32_weight_grads, "| native:", native.available(), "| precision:", os.environ.get("PRECISION", "fp32"))
applies = native.dropout_applies
variants = {name: B.variant(name, B.build_attnlab(cfg[os.environ.get("MODEL_KEY", "model")], cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
            for name in ("torch_mask", "native")}
def step(name, b):
    D.native.dropout_applies = applies if name == "native" else (lambda x: False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=os.environ.get("PRECISION") == "bf16"):
        t = time.perf_counter(); B.train_step(variants[name], b, crit); return time.perf_counter() - t
for _ in range(2):  # warm-up: every batch, both variants
    for b in batches:
        for name in variants: step(name, b)
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
ratios = [a / b for a, b in zip(sec["torch_mask"], sec["native"])]
q = statistics.quantiles(ratios, n=4)
print(f"native speed / torch_mask, per step pair: median {statistics.median(ratios):.3f}x (IQR {q[0]:.3f}-{q[2]:.3f}, {len(ratios)} pairs)")
