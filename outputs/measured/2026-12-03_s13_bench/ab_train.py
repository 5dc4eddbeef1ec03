# Interleaved A/B of the transformer_small training step (bench batches: 8192-token budget, vocab
# 8000, dropout 0.1, fused Adam, label smoothing 0.1): HEAD's code (attnlab_old, padded) against
# the working tree (position-wise layers on real tokens only). Same initial weights.
import os, sys, statistics, torch
sys.path.insert(0, "/tmp/old")
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
import attnlab_old.models.transformer as OT
precision = sys.argv[1] if len(sys.argv) > 1 else "32"
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[2:]])  # e.g. max_tokens=2560
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
new = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed)
args = {k: v for k, v in cfg.model.items() if k != "_target_"}
old = OT.Transformer(src_vocab_size=cfg.vocab, tgt_vocab_size=cfg.vocab, pad_id=0, **args)
old.load_state_dict(new.state_dict())
variants = {"old": B.variant("old", old, cfg.lr, B.padded_logits(old)), "new": B.variant("new", new, cfg.lr)}
criterion = B.criterion_for(cfg)
def step(name, r):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        B.train_step(variants[name], batches[r % len(batches)], criterion)
steps = int(os.environ.get("STEPS", 8))
seconds, _ = B.interleave(list(variants), 2, steps, step, dev)
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in range(2, 2 + steps)]
for n in variants:
    rates = [t / s for t, s in zip(tokens, seconds[n])]
    print(n, precision, f"median {statistics.median(rates):.0f} tokens/s", [round(r) for r in rates])
