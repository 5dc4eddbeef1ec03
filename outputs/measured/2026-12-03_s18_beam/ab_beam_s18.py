"""Session 18: old against new beam search in one process, taking turns (the order alternating
every repeat), on the bench's beam batch (transformer_small, beam 4, batch 64, 32 tokens).

    python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py <what> [bf16] [greedy] [R]

<what> names the change under test (see ``VARIANTS``); each installs the new code path when
switched on and the code at HEAD when switched off. Prints whether the hypotheses (tokens and
log-prob) are identical, each side's median ms per batch and the median of the per-repeat ratios
old/new (> 1: new is faster)."""
import math, os, statistics, sys, time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

import attnlab.decoding as D
from attnlab import bench as B
from attnlab.models import kv_cache as KV
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
what = sys.argv[1]
bf16 = "bf16" in sys.argv[2:]
strategy = "greedy" if "greedy" in sys.argv[2:] else "beam"
repeats = int(next((a for a in sys.argv[2:] if a.isdigit()), 12))
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    model_override = [f"model={os.environ['MODEL']}"] if os.environ.get("MODEL") else []
    cfg = compose("bench", overrides=["~model@extra_models.base", *model_override])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()


def sdpa_attend(self, query):
    k, length = self.beams, self.length
    key, value = self._buffers.key[:, :, :length], self._buffers.value[:, :, :length]
    rows, h, t, d_k = query.shape
    n = rows // k
    grouped = query.to(key.dtype).reshape(n, k, h, d_k).transpose(1, 2)
    keys = key.reshape(n, h, length * k, d_k)
    values = value.reshape(n, h, length * k, -1)
    slots = torch.arange(k, device=query.device)
    mask = (self.ancestry.view(n, k, length, 1) == slots).view(n, 1, k, length * k)
    out = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=mask)
    return out.transpose(1, 2).reshape(rows, h, 1, -1)


from attnlab import native

# name: (object, attribute, new value, old value)
VARIANTS = {
    # the native kernels (attnlab/native) against the PyTorch path at HEAD
    "native": (native, "_enabled", True, False),
    # SDPA with a boolean ancestry mask for the beam self-attention (not kept)
    "sdpa_self": (KV.BeamKVCache, "attend", sdpa_attend, KV.BeamKVCache.attend),
}
# One kernel on against off, with the other on in both.
if what == "native_attention":
    VARIANTS[what] = (native, "beam_self_attention", native.beam_self_attention, lambda *a: None)
if what == "native_ranking":
    VARIANTS[what] = (native, "log_softmax_topk", native.log_softmax_topk, lambda *a, **kw: None)
if what == "native_cross":
    VARIANTS[what] = (native, "attention", native.attention, lambda *a: None)
owner, name, new_value, old_value = VARIANTS[what]


def set_new(new: bool) -> None:
    setattr(owner, name, new_value if new else old_value)


def search() -> list:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        beam = {"beam_size": 4, "length_penalty": 0.6} if strategy == "beam" else {}
        hyps = D.generate(model, batch.src, batch.src_pad_mask, strategy=strategy, bos_id=B.BOS,
                          eos_id=B.EOS, max_len_a=0, max_len_b=31, min_len=31, **beam)
    return [(h[0].tokens, h[0].log_prob) for h in hyps]


set_new(False)
old = search()
set_new(True)
new = search()
print(f"{what} {strategy} {'bf16' if bf16 else 'fp32'}: identical hypotheses for",
      sum(a == b for a, b in zip(old, new)), "of", len(old), "; same tokens for",
      sum(a[0] == b[0] for a, b in zip(old, new)), "; max |log-prob diff|",
      max(abs(a[1] - b[1]) for a, b in zip(old, new)))
times = {False: [], True: []}
for r in range(repeats):
    for mode in (False, True) if r % 2 == 0 else (True, False):
        set_new(mode)
        t = time.perf_counter()
        search()
        times[mode].append(time.perf_counter() - t)
for mode, label in ((False, "old"), (True, "new")):
    print(f"{label}: median {statistics.median(times[mode]) * 1e3:.0f} ms/batch,",
          " ".join(f"{x * 1e3:.0f}" for x in times[mode]))
ratios = [a / b for a, b in zip(times[False], times[True])]
print(f"old/new per repeat: median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f},",
      " ".join(f"{x:.2f}" for x in sorted(ratios)))
