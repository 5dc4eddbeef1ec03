"""Interleaved A/B of beam search (bench shape: batch 64, beam 4, 32 new tokens): the feed-forward
ReLU as F.relu after the matmul (as at 46ff17f) against oneDNN's post-op on the packed weight
(Linear.forward_relu). python ab_fused_relu.py [bf16] [R] [hydra overrides]"""
import os, statistics, sys, time
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
import attnlab.decoding as D
from attnlab import bench as B
from attnlab.models import transformer as T
from attnlab.models.dropout import dropout
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
args = sys.argv[1:]
bf16 = "bf16" in args
repeats = int(next((a for a in args if a.isdigit()), 8))
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *[a for a in args if "=" in a]])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
fused_forward = T.PositionwiseFeedForward.forward


def separate_forward(self, x):
    return self.w_2(dropout(F.relu(self.w_1(x)), self.activation_dropout, self.training))


def search(name):
    T.PositionwiseFeedForward.forward = fused_forward if name == "fused" else separate_forward
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hyps = D.generate(model, batch.src, batch.src_pad_mask, strategy="beam", bos_id=B.BOS,
                          eos_id=B.EOS, max_len_a=0, max_len_b=31, min_len=31, beam_size=4,
                          length_penalty=0.6)
    return [(h[0].tokens, h[0].log_prob) for h in hyps]


a, b = search("separate"), search("fused")
print(f"{'bf16' if bf16 else 'fp32'} {' '.join(x for x in args if '=' in x)}: identical hypotheses {sum(x == y for x, y in zip(a, b))} of {len(a)};",
      f"same tokens {sum(x[0] == y[0] for x, y in zip(a, b))}; max |log-prob diff| {max(abs(x[1] - y[1]) for x, y in zip(a, b)):.2e}")
times = {"separate": [], "fused": []}
for r in range(repeats):
    for name in ("separate", "fused") if r % 2 == 0 else ("fused", "separate"):
        t = time.perf_counter(); search(name); times[name].append(time.perf_counter() - t)
ratios = [x / y for x, y in zip(times["separate"], times["fused"])]
print(f"separate {statistics.median(times['separate'])*1e3:.0f} ms, fused {statistics.median(times['fused'])*1e3:.0f} ms a batch; "
      f"median separate/fused {statistics.median(ratios):.3f}x (min {min(ratios):.3f}, max {max(ratios):.3f}, {repeats} repeats)")
