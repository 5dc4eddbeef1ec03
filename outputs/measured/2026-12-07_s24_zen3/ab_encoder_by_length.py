# Session 24: interleaved A/B of the RNN fp32 teacher-forced training step on the bench's
# batches (8192 tokens, vocab 8000; conf/model/rnn_luong.yaml unless overridden): the encoder
# over a packed sequence (the code before this session) against run_padded, which in training
# runs a CPU LSTM once per distinct source length through oneDNN's fused LSTM. Two copies of the
# same initial weights, same batches, same dropout.
#   STEPS=16 python ab_encoder_by_length.py [model@rnn_model=rnn_bahdanau ...]
import os, sys, statistics, types, torch
from hydra import compose, initialize_config_dir
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from attnlab import bench as B
from attnlab.models.dropout import dropout
from attnlab.models.recurrent import run_recurrent
from attnlab.runtime import keep_freed_memory; keep_freed_memory()


def packed_forward(self, src, pad_mask):  # RNNEncoder.forward before this session (text input)
    embedded = dropout(self.embedding(src), self.dropout, self.training)
    lengths = (~pad_mask).sum(1).cpu()
    packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    outputs, final = run_recurrent(self.rnn, packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=embedded.size(1))
    final = final if isinstance(final, tuple) else (final,)
    return dropout(outputs, self.dropout, self.training), final, pad_mask


conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
print(cfg.rnn_model._target_, {k: cfg.rnn_model[k] for k in ("hidden_size", "encoder_layers", "bidirectional")})
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
for b in batches:
    lengths = (~b.src_pad_mask).sum(1)
    print("batch", tuple(b.src.shape), "distinct source lengths", lengths.unique().numel())
criterion = B.criterion_for(cfg)
names = ["packed", "by_length"]
variants = {n: B.variant(n, B.build_attnlab(cfg.rnn_model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
enc = variants["packed"].model.encoder
enc.forward = types.MethodType(packed_forward, enc)

# Same logits, eval mode (no dropout; eval runs without grad, where run_padded packs too), and
# the same gradients in train mode with dropout off.
b = batches[0]
for v in variants.values(): v.model.eval()
with torch.no_grad():
    a, h = (v.logits(b) for v in variants.values())
    print("eval logits: shape", tuple(h.shape), "max |diff|", float((a - h).abs().max()))
grads = []
for v in variants.values():
    v.model.zero_grad(); v.logits(b).logsumexp(-1).sum().backward()
    grads.append({n: p.grad.clone() for n, p in v.model.named_parameters() if p.grad is not None})
    v.model.zero_grad(); v.model.train()
print("grad-enabled logits (eval mode): max |grad diff| over parameters",
      max(float((grads[0][n] - grads[1][n]).abs().max()) for n in grads[0]))

steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, lambda n, r: B.train_step(variants[n], batches[r % len(batches)], criterion), dev)
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, run.seconds[n])]
    print(n, f"median {statistics.median(rates):,.0f} tokens/s", [round(r) for r in rates])
ratios = sorted(x / y for x, y in zip(run.seconds["packed"], run.seconds["by_length"]))
q = statistics.quantiles(ratios, n=4)
print(f"packed/by_length seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
