# Session 20: interleaved A/B of the transformer_small training step on the bench's batches
# (8192 tokens, vocab 8000, dropout 0.1, fused Adam, label smoothing 0.1, fp32 unless "bf16"):
# the label-smoothed loss through PyTorch (log_softmax, gather, mean; exp_ in the backward) vs
# the native kernels (smoothed_ce_forward/backward). Two copies of the same initial weights;
# the switch is flipped before each variant's step.  python ab_loss.py [bf16] [hydra overrides]
import os, sys, statistics, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B, native
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
bf16 = "bf16" in sys.argv[1:]
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *[a for a in sys.argv[1:] if a != "bf16"]])
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
variants = {n: B.variant(n, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in ("torch_loss", "native_loss")}
criterion = B.criterion_for(cfg)
def step(name, r):
    native.use_native_kernels(name == "native_loss")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        B.train_step(variants[name], batches[r % len(batches)], criterion)
steps = int(os.environ.get("STEPS", 12))
seconds, _ = B.interleave(list(variants), 2, steps, step, dev)
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in range(2, 2 + steps)]
for n in variants:
    rates = [t / s for t, s in zip(tokens, seconds[n])]
    print(n, f"median {statistics.median(rates):.0f} tokens/s", [round(r) for r in rates])
ratios = [x / y for x, y in zip(seconds["torch_loss"], seconds["native_loss"])]
print("torch/native per step: median", round(statistics.median(ratios), 3), [round(x, 3) for x in ratios])
