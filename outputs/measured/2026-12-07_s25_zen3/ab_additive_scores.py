# Session 25: interleaved A/B of the fp32 teacher-forced training step of the Bahdanau RNN
# (the bench's rnn section batches, 8192 tokens, vocab 8000, model@rnn_model=rnn_bahdanau by
# default): the additive scores through autograd (tanh of [B, S, A] made, kept and
# differentiated at every step, the keys' gradient added step by step) against
# AdditiveStepScores (models/step_attention.py: native kernels, the tanh recomputed in the
# backward, the keys' gradient summed in place). Two copies of the same initial weights.
#   STEPS=16 python ab_additive_scores.py [max_tokens=2560] [model@rnn_model=rnn_luong rnn_model.score=concat]
import os, sys, statistics, types, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()

conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    chosen = any(a.startswith("model@rnn_model=") for a in sys.argv[1:])
    default = [] if chosen else ["model@rnn_model=rnn_bahdanau"]
    cfg = compose("bench", overrides=["~model@extra_models.base", *default, *sys.argv[1:]])
print(cfg.rnn_model._target_, "score", cfg.rnn_model.get("score"), "input_feeding", cfg.rnn_model.get("input_feeding"))
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
print("batch shapes (src, tgt):", [(tuple(b.src.shape), tuple(b.tgt_in.shape)) for b in batches])
criterion = B.criterion_for(cfg)
names = ["autograd", "native"]
variants = {n: B.variant(n, B.build_attnlab(cfg.rnn_model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
m = variants["autograd"].model
m._for_teacher_forcing = types.MethodType(lambda self, enc: enc, m)

# Same gradients, dropout off (eval mode, grad enabled: the kernels apply whenever grad is).
b = batches[0]
grads = []
for v in variants.values():
    v.model.eval(); v.model.zero_grad()
    v.logits(b).logsumexp(-1).sum().backward()
    grads.append({n: p.grad.clone() for n, p in v.model.named_parameters() if p.grad is not None})
    v.model.zero_grad(); v.model.train()
rel = {n: float((grads[0][n] - grads[1][n]).abs().max() / grads[0][n].abs().max()) for n in grads[0]}
worst = max(rel, key=rel.get)
print("largest gradient difference, relative to that parameter's largest gradient:", worst, rel[worst])

steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, lambda n, r: B.train_step(variants[n], batches[r % len(batches)], criterion), dev)
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, run.seconds[n])]
    print(n, f"median {statistics.median(rates):,.0f} tokens/s", [round(r) for r in rates])
ratios = sorted(x / y for x, y in zip(run.seconds["autograd"], run.seconds["native"]))
q = statistics.quantiles(ratios, n=4)
print(f"autograd/native seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
