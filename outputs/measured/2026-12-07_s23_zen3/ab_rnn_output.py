# Session 23: interleaved A/B of the RNN fp32 teacher-forced training step on the bench's
# batches (8192 tokens, vocab 8000; the bench's rnn section, conf/model/rnn_luong.yaml unless a
# model override is given): the output layer once per decoder step, the logits stacked and the
# real positions selected (the code before this session, which ran decode_step per step),
# against the output layer once over the selected positions after the loop (this session's
# _RNNSeq2Seq.decode). Two copies of the same initial weights, same batches, same dropout.
#   STEPS=16 python ab_rnn_output.py [model@rnn_model=rnn_bahdanau ...]
import os, sys, statistics, types, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()


def per_step_decode(self, tgt_in, enc, target_positions=None):
    state = self.init_decoder_state(enc)
    logits = []
    for t in range(tgt_in.size(1)):
        step_logits, state = self.decode_step(tgt_in[:, t], enc, state)
        logits.append(step_logits)
    logits = torch.stack(logits, dim=1)
    if target_positions is None:
        return logits
    return logits.view(-1, logits.size(-1)).index_select(0, target_positions)


with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
print(cfg.rnn_model._target_)
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
criterion = B.criterion_for(cfg)
names = ["per_step", "hoisted"]
variants = {n: B.variant(n, B.build_attnlab(cfg.rnn_model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
m = variants["per_step"].model
m.decode = types.MethodType(per_step_decode, m)

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
ratios = sorted(x / y for x, y in zip(run.seconds["per_step"], run.seconds["hoisted"]))
q = statistics.quantiles(ratios, n=4)
print(f"per_step/hoisted seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
