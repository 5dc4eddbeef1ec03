"""fp32 beam search (beam 4, batch 64, 32 tokens, transformer_small) with the decoder's Q, K, V
projected by three packed matmuls (as attnlab does in fp32) against one matmul on the stacked
weights (what it does in bf16), taking turns in one process.

    python outputs/measured/2026-12-07_s21_zen3/ab_stacked_qkv_fp32.py [repeats]
"""
import dataclasses, os, statistics, sys, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import transformer as T
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
model = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
original = type(model).init_decoder_state


def stacked_init(self, enc):
    state = original(self, enc)
    return dataclasses.replace(state, stacked_qkv=[l.self_attn.stacked_qkv(torch.float32) for l in self.decoder_layers])


def search():
    with torch.no_grad():
        return B.attnlab_search(model, batch, "beam", 32, beam_size=4, length_penalty=0.6)


variants = {"three": original, "stacked": stacked_init}
secs = {n: [] for n in variants}
outs = {}
for r in range(repeats + 1):
    for n in (list(variants) if r % 2 == 0 else list(reversed(list(variants)))):
        type(model).init_decoder_state = variants[n]
        t = time.perf_counter(); search(); dt = time.perf_counter() - t
        if r:
            secs[n].append(dt)
type(model).init_decoder_state = original
ratios = [a / b for a, b in zip(secs["three"], secs["stacked"])]
for n, s in secs.items():
    print(f"{n:8s} {64 / statistics.median(s):6.1f} sentences/s")
print(f"stacked / three per repeat: median {statistics.median(ratios):.3f}x (range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} repeats)")
