# Session 24: interleaved A/B of the fp32 teacher-forced training step of Luong without input
# feeding, on the bench's batches (8192 tokens, vocab 8000; the bench's rnn section,
# conf/model/rnn_luong.yaml with input_feeding=false): the decoder stepped one token at a time
# (what decode did before this session, forced here by _advance_all returning None) against the
# decoder LSTM over the whole target in one call and the attention of all steps in one batched
# matmul (LuongRNN._advance_all). Two copies of the same initial weights, same batches.
#   STEPS=16 python ab_luong_no_feeding.py [rnn_model.score=dot ...]
import os, sys, statistics, types, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()

conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", "rnn_model.input_feeding=false", *sys.argv[1:]])
print(cfg.rnn_model._target_, "input_feeding", cfg.rnn_model.input_feeding, "score", cfg.rnn_model.score)
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
criterion = B.criterion_for(cfg)
names = ["stepped", "whole"]
variants = {n: B.variant(n, B.build_attnlab(cfg.rnn_model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
m = variants["stepped"].model
m._advance_all = types.MethodType(lambda self, embedded, enc, state: None, m)

# Same logits, eval mode (no dropout), before any training.
with torch.no_grad():
    b = batches[0]
    for v in variants.values(): v.model.eval()
    a, h = (v.logits(b) for v in variants.values())
    print("eval logits: shape", tuple(h.shape), "max |diff|", float((a - h).abs().max()))
    for v in variants.values(): v.model.train()

steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, lambda n, r: B.train_step(variants[n], batches[r % len(batches)], criterion), dev)
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, run.seconds[n])]
    print(n, f"median {statistics.median(rates):,.0f} tokens/s", [round(r) for r in rates])
ratios = sorted(x / y for x, y in zip(run.seconds["stepped"], run.seconds["whole"]))
q = statistics.quantiles(ratios, n=4)
print(f"stepped/whole seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
