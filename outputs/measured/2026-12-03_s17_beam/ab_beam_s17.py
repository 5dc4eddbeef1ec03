"""Session 17: old against new beam search in one process, taking turns (the order alternating
every repeat), on the bench's beam batch (transformer_small, beam 4, batch 64, 32 tokens).

    python outputs/measured/2026-12-03_s17_beam/ab_beam_s17.py packed|spare [bf16] [greedy] [R]

- ``packed``: the decoder's linear weights packed by oneDNN once per search
  (``models/linear.packed_weights``) against re-laid out at every call (the packing op
  switched off).
  ``greedy`` times greedy search instead of beam search.
- ``spare``: the per-beam top-k of fp32 logits with 1 spare candidate against k + 1.

Prints whether the hypotheses (tokens and log-prob) are identical, each side's median ms per
batch and the median of the per-repeat ratios old/new (> 1: new is faster)."""
import os, statistics, sys, time

import torch
from hydra import compose, initialize_config_dir

import attnlab.decoding as D
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
what = sys.argv[1]
bf16 = "bf16" in sys.argv[2:]
strategy = "greedy" if "greedy" in sys.argv[2:] else "beam"
repeats = int(next((a for a in sys.argv[2:] if a.isdigit()), 12))
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    # MODEL=rnn_luong (say) runs another model config than transformer_small.
    model_override = [f"model={os.environ['MODEL']}"] if os.environ.get("MODEL") else []
    cfg = compose("bench", overrides=["~model@extra_models.base", *model_override])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
reorder, best_extensions = L._reorder_linear_weight, D._best_extensions


def set_new(new: bool) -> None:
    if what == "packed":
        L._reorder_linear_weight = reorder if new else None
    else:
        D._best_extensions = best_extensions if new else (
            lambda scores, lprobs, width, spare=None: best_extensions(scores, lprobs, width)
        )


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
      sum(a == b for a, b in zip(old, new)), "of", len(old))
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
