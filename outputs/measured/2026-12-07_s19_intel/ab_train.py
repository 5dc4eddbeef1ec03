"""Old against new training step in one process (transformer_small, the bench's 8192-token
batches, fp32 unless argv has bf16), taking turns, the order alternating every repeat. The old
code paths are copied here (as they are at 1b805d1) and patched in for the "old" turns; the new
ones are those of tried_unpack_dropout.patch (apply it first: git apply; it was not kept).

    python outputs/measured/2026-12-07_s19_intel/ab_train.py <what> [bf16] [repeats]

<what>: unpack (Packing.unpack), dropout (the dropout mask multiply), all (both)."""
import math, os, statistics, sys, time
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from attnlab import bench as B
from attnlab.models import attention as A, dropout as Dr
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
args = sys.argv[1:]
what = args[0]
bf16 = "bf16" in args
repeats = int(next((a for a in args[1:] if a.isdigit()), 12))


def old_unpack(self, x):
    out = x.new_zeros(self.batch * self.length, *x.shape[1:])
    return out.index_copy(0, self.index, x).view(self.batch, self.length, *x.shape[1:])


class OldMaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        mask, keep = Dr.keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(mask)
        ctx.scale = 1.0 / keep
        return torch.mul(x, mask).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.mul(grad, mask).mul_(ctx.scale), None


new = {"unpack": (A.Packing, "unpack", A.Packing.unpack), "dropout": (Dr, "_MaskedScale", Dr._MaskedScale)}
old = {"unpack": old_unpack, "dropout": OldMaskedScale}
chosen = list(new) if what == "all" else [what]


def use(version):
    for key in chosen:
        owner, name, fresh = new[key]
        setattr(owner, name, fresh if version == "new" else old[key])


with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
dev = torch.device("cpu")
variants = {v: B.variant(v, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for v in ("old", "new")}


rng = {v: torch.get_rng_state() for v in variants}  # each variant its own random stream


def step(version, b):
    use(version)
    torch.set_rng_state(rng[version])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        B.train_step(variants[version], b, crit)
    rng[version] = torch.get_rng_state()


for r in range(2):
    for version in ("old", "new"):
        step(version, batches[r % len(batches)])
times = {"old": [], "new": []}
for r in range(repeats):
    order = ("old", "new") if r % 2 == 0 else ("new", "old")
    b = batches[r % len(batches)]
    for version in order:
        t = time.perf_counter()
        step(version, b)
        times[version].append(time.perf_counter() - t)
ratios = [o / n for o, n in zip(times["old"], times["new"])]
same = all(torch.equal(p, q) for p, q in zip(variants["old"].model.parameters(), variants["new"].model.parameters()))
print(f"{what} {'bf16' if bf16 else 'fp32'}: old {statistics.median(times['old'])*1e3:.0f} ms, new {statistics.median(times['new'])*1e3:.0f} ms a step; "
      f"median old/new {statistics.median(ratios):.3f}x (min {min(ratios):.3f}, max {max(ratios):.3f}, {repeats} repeats); "
      f"parameters identical after training: {same}")
