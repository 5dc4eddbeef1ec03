# Session 23: interleaved A/B of the transformer_small fp32 training step (bench batches): the
# oneDNN/MKL linear layers as they are, against every linear layer's three matmuls (forward,
# input gradient, weight gradient) through numpy's OpenBLAS (zero-copy views of the tensors).
# OPENBLAS_THREAD_TIMEOUT keeps OpenBLAS's threads from spinning long after each call, where
# torch's OpenMP threads want the two cores.   STEPS=12 python ab_openblas_train.py
import os
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import statistics, sys, numpy as np, torch
from hydra import compose, initialize_config_dir
from torch.autograd.function import once_differentiable
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory; keep_freed_memory()


def mm(a, b):  # a @ b through OpenBLAS, into a fresh torch tensor
    out = torch.empty(a.shape[0], b.shape[1])
    np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    return out


class OpenBLASLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        rows = x.reshape(-1, x.size(-1))
        y = mm(rows, weight.t())
        if bias is not None:
            y += bias
        return y.view(*x.shape[:-1], weight.size(0))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.size(-1)).contiguous()
        gx = mm(g, weight).view(*x.shape) if ctx.needs_input_grad[0] else None
        gw = mm(g.t(), x.reshape(-1, x.size(-1))) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


impls = {"current": L._OneDNNLinear, "openblas": OpenBLASLinear}
names = list(impls)
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
dev = torch.device("cpu")
batches = B.synthetic_batches(cfg)
variants = {n: B.variant(n, B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed), cfg.lr) for n in names}
criterion = B.criterion_for(cfg)


def step(name, r):
    L._OneDNNLinear = impls[name]
    B.train_step(variants[name], batches[r % len(batches)], criterion)


steps = int(os.environ.get("STEPS", 12))
run = B.interleave(names, len(batches), steps, step, dev)
print(run.warmup_note("steps"))
tokens = [sum(B.token_counts(batches[r % len(batches)])) for r in run.timed_rounds]
for n in names:
    rates = [t / s for t, s in zip(tokens, run.seconds[n])]
    print(n, f"median {statistics.median(rates):,.0f} tokens/s", [round(r) for r in rates])
ratios = sorted(x / y for x, y in zip(run.seconds["current"], run.seconds["openblas"]))
q = statistics.quantiles(ratios, n=4)
print(f"current/openblas seconds per step: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}")
a, b = (list(v.model.parameters()) for v in variants.values())
print("max |param diff| after training:", max(float((x - y).abs().max()) for x, y in zip(a, b)))
