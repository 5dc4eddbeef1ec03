# Session 23: interleaved A/B of the transformer_small fp32 training step (bench batches:
# 8192 tokens, vocab 8000, dropout 0.1): oneDNN linear layers as they are (plain weights,
# the input gradient through W^T as a strided view) against variants that pack the weight in
# oneDNN's blocked layout for the forward ("packed_fwd"), and also W^T for the input gradient
# ("packed_both"), each step (the weights change at every optimizer step).
#   STEPS=16 python ab_packed_train.py [variant ...]
import os, sys, statistics, torch
from hydra import compose, initialize_config_dir
from torch.autograd.function import once_differentiable
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory; keep_freed_memory()

reorder = torch.ops.mkldnn._reorder_linear_weight


def make(pack_fwd: bool, pack_bwd: bool, contig_bwd: bool = False):
    class F(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias):
            ctx.save_for_backward(x, weight)
            ctx.has_bias = bias is not None
            rows = x.numel() // x.size(-1)
            w = reorder(weight, rows) if pack_fwd else weight
            return L.linear_onednn(x, w, bias)

        @staticmethod
        @once_differentiable
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            rows = grad.reshape(-1, grad.size(-1))
            wt = weight.t()
            if pack_bwd:
                wt = reorder(wt.contiguous(), rows.size(0))
            elif contig_bwd:
                wt = wt.contiguous()
            grad_x = L.linear_onednn(grad, wt, None) if ctx.needs_input_grad[0] else None
            grad_w = rows.t().mm(x.reshape(-1, x.size(-1))) if ctx.needs_input_grad[1] else None
            grad_b = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
            return grad_x, grad_w, grad_b
    return F


impls = {
    "current": L._OneDNNLinear,
    "packed_fwd": make(True, False),
    "packed_both": make(True, True),
    "contig_bwd": make(False, False, True),
}
names = [a for a in sys.argv[1:] if a in impls] or ["current", "packed_both"]
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *[a for a in sys.argv[1:] if a not in impls]])
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
variants = {n: B.variant(n, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
criterion = B.criterion_for(cfg)


def step(name, r):
    L._OneDNNLinear = impls[name]
    B.train_step(variants[name], batches[r % len(batches)], criterion)


steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, step, dev)
seconds = run.seconds
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, seconds[n])]
    print(n, f"median {statistics.median(rates):.0f} tokens/s", [round(r) for r in rates])
for n in names[1:]:
    ratios = [x / y for x, y in zip(seconds[names[0]], seconds[n])]
    print(f"{names[0]}/{n} seconds per step: median", round(statistics.median(ratios), 3), [round(x, 3) for x in ratios])
p = [v.model.parameters() for v in variants.values()]
print("max |param diff| after training:", max((a - b).abs().max().item() for a, b in zip(*[list(x) for x in p[:2]])))
