"""Interleaved A/B of one decoder step in beam search (64 sentences x 4 beams, 16 steps cached,
bf16 autocast by default): the code in OLD_DIR (imported as attnlab_old) against the working
tree, same weights. Less noisy than whole searches: the same state every time.

    OLD_DIR=/tmp/old python outputs/measured/2026-12-03_s15_beam/ab_step.py [bf16|32]"""
import os, statistics, sys, time

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, os.environ.get("OLD_DIR", "/tmp/old"))
import attnlab_old.models.transformer as OT  # noqa: E402

from attnlab import bench as B  # noqa: E402
from attnlab.runtime import keep_freed_memory  # noqa: E402

keep_freed_memory()
bf16 = (sys.argv[1] if len(sys.argv) > 1 else "bf16") == "bf16"
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
new = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
args = {k: v for k, v in cfg.model.items() if k != "_target_"}
old = OT.Transformer(src_vocab_size=cfg.vocab, tgt_vocab_size=cfg.vocab, pad_id=0, **args).eval()
old.load_state_dict(new.state_dict())
k, steps, block, blocks = 4, 16, 10, int(os.environ.get("BLOCKS", 30))
gen = torch.Generator().manual_seed(0)


def prepare(model):
    enc = model.encode(batch.src, batch.src_pad_mask)
    state = model.init_decoder_state(enc)
    _, state = model.decode_step(torch.full((64,), B.BOS), enc, state)
    enc, state = model.expand_for_beams(enc, state, k)
    for _ in range(steps):
        parent = (torch.arange(64)[:, None] * k + torch.randint(k, (64, k), generator=gen)).view(-1)
        state = model.reorder_decoder_state(state, parent)
        _, state = model.decode_step(torch.randint(4, cfg.vocab, (256,), generator=gen), enc, state)
    return enc, state


ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
with torch.inference_mode(), ctx():
    prepared = {"old": (old, *prepare(old)), "new": (new, *prepare(new))}
    prev = torch.randint(4, cfg.vocab, (256,), generator=gen)
    times = {"old": [], "new": []}
    for i in range(blocks + 2):
        for name in ("old", "new") if i % 2 else ("new", "old"):
            model, enc, state = prepared[name]
            t = time.perf_counter()
            for _ in range(block):
                model.decode_step(prev, enc, state)
            if i >= 2:
                times[name].append((time.perf_counter() - t) / block * 1e3)
ratios = [o / n for o, n in zip(times["old"], times["new"])]
for name, ts in times.items():
    print(f"{name}: median {statistics.median(ts):.2f} ms per step")
print(f"old/new per block: median {statistics.median(ratios):.3f}, "
      f"new faster in {sum(r > 1 for r in ratios)}/{len(ratios)} blocks")
