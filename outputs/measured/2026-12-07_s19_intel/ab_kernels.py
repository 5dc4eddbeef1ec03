"""Old against new native kernels (src/attnlab/native/kernels.c at a git revision against the
working tree's), in one beam search process, taking turns, the order alternating every repeat,
on the bench's beam batch (beam 4, batch 64, 32 tokens). Both builds are loaded side by side
and ``native._library`` points at one or the other.

    python outputs/measured/2026-12-07_s19_intel/ab_kernels.py <old revision> [bf16] [R] [hydra overrides]

Prints whether the hypotheses agree, each side's median ms per batch and the median of the
per-repeat old/new ratios (> 1: new is faster)."""
import os, statistics, subprocess, sys, time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import attnlab.decoding as D
from attnlab import bench as B, native
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
revision, rest = sys.argv[1], sys.argv[2:]
bf16 = "bf16" in rest
repeats = int(next((a for a in rest if a.isdigit()), 10))
overrides = [a for a in rest if "=" in a]

old_source = Path("/tmp/attnlab_old_kernels.c")
old_source.write_text(subprocess.run(["git", "show", f"{revision}:src/attnlab/native/kernels.c"],
                                     capture_output=True, text=True, check=True).stdout)
new_source = native.SOURCE
libraries = {}
for name, source in (("old", old_source), ("new", new_source)):
    native.SOURCE, native._tried, native._library = source, False, None
    libraries[name] = native._load()
    assert libraries[name] is not None
native.SOURCE = new_source

with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *overrides])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()


def search(name):
    native._library = libraries[name]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hyps = D.generate(model, batch.src, batch.src_pad_mask, strategy="beam", bos_id=B.BOS,
                          eos_id=B.EOS, max_len_a=0, max_len_b=31, min_len=31, beam_size=4,
                          length_penalty=0.6)
    return [(h[0].tokens, h[0].log_prob) for h in hyps]


old, new = search("old"), search("new")
print(f"{revision} vs working tree, {'bf16' if bf16 else 'fp32'} {' '.join(overrides)}: identical hypotheses for",
      sum(a == b for a, b in zip(old, new)), "of", len(old), "; same tokens for",
      sum(a[0] == b[0] for a, b in zip(old, new)), "; max |log-prob diff|",
      max(abs(a[1] - b[1]) for a, b in zip(old, new)))
times = {"old": [], "new": []}
for r in range(repeats):
    for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
        t = time.perf_counter()
        search(name)
        times[name].append(time.perf_counter() - t)
for name in ("old", "new"):
    print(f"{name}: median {statistics.median(times[name]) * 1e3:.0f} ms/batch,",
          " ".join(f"{x * 1e3:.0f}" for x in times[name]))
ratios = [a / b for a, b in zip(times["old"], times["new"])]
print(f"old/new per repeat: median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f},",
      " ".join(f"{x:.2f}" for x in sorted(ratios)))
