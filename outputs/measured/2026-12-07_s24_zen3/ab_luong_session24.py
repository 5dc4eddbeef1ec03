# Session 24: interleaved A/B of the default Luong RNN's fp32 training step, the code before this
# session (a packed encoder; each step's attention through autograd) against this session's
# (run_padded's one fused LSTM call per distinct source length; StepAttention). Bench batches
# (vocab 8000) of max_tokens tokens, 8192 unless overridden. Two copies of the same weights.
#   STEPS=24 python ab_luong_session24.py max_tokens=2560
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
print(cfg.rnn_model._target_, "max_tokens", cfg.max_tokens)
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
for b in batches:
    print("batch", tuple(b.src.shape), "distinct source lengths", (~b.src_pad_mask).sum(1).unique().numel())
criterion = B.criterion_for(cfg)
names = ["before", "session24"]
variants = {n: B.variant(n, B.build_attnlab(cfg.rnn_model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
old = variants["before"].model
old.encoder.forward = types.MethodType(packed_forward, old.encoder)
old._for_teacher_forcing = types.MethodType(lambda self, enc: enc, old)

steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, lambda n, r: B.train_step(variants[n], batches[r % len(batches)], criterion), dev)
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, run.seconds[n])]
    print(n, f"median {statistics.median(rates):,.0f} tokens/s", [round(r) for r in rates])
ratios = sorted(x / y for x, y in zip(run.seconds["before"], run.seconds["session24"]))
q = statistics.quantiles(ratios, n=4)
print(f"before/session24 seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
