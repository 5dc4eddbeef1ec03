# Interleaved A/B of the transformer_small training step on the bench's batches (8192 tokens,
# vocab 8000, dropout 0.1, fused Adam, label smoothing 0.1, fp32): fp32 linear layers through
# torch's F.linear (MKL sgemm) vs through oneDNN (attnlab.models.linear). Two copies of the
# same initial weights; the switch is flipped before each variant's step. RNN=1: the bench's
# rnn_model (Luong) instead of transformer_small.
import os, sys, statistics, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
a = B.build_attnlab(cfg.rnn_model if os.environ.get("RNN") else cfg.model, cfg.vocab, dev, cfg.seed)
b = B.build_attnlab(cfg.rnn_model if os.environ.get("RNN") else cfg.model, cfg.vocab, dev, cfg.seed)
variants = {"mkl": B.variant("mkl", a, cfg.lr), "onednn": B.variant("onednn", b, cfg.lr)}
criterion = B.criterion_for(cfg)
def step(name, r):
    L.use_onednn(name == "onednn")
    B.train_step(variants[name], batches[r % len(batches)], criterion)
steps = int(os.environ.get("STEPS", 8))
seconds, _ = B.interleave(list(variants), 2, steps, step, dev)
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in range(2, 2 + steps)]
for n in variants:
    rates = [t / s for t, s in zip(tokens, seconds[n])]
    print(n, f"median {statistics.median(rates):.0f} tokens/s", [round(r) for r in rates])
print("ratio per step", [round(x / y, 3) for x, y in zip(seconds["mkl"], seconds["onednn"])])
