"""Weight (and bias) gradients of fp32 linear layers, 7,552 token rows, interleaved: attnlab's
weight_grad (a oneDNN matmul on a transposed copy) + a bias sum, MKL's mm + the sum, and
oneDNN's inner-product backward-weights primitive (aten::mkldnn_linear_backward_weights,
which takes oneDNN-layout tensors: plain copies by to_mkldnn)."""
import sys, time, statistics as st, torch
from attnlab.models.linear import weight_grad, onednn_weight_grads_enabled
print("weight_grad through oneDNN:", onednn_weight_grads_enabled(), "threads", torch.get_num_threads())
torch.manual_seed(0)
rows = 7552
bwd = torch.ops.aten.mkldnn_linear_backward_weights
shapes = [(256, 256), (256, 512), (256, 768), (256, 1024), (1024, 256), (512, 512), (512, 1024), (512, 1536), (512, 2048), (2048, 512), (256, 8000), (512, 8000)]
for fin, fout in shapes:
    x = torch.randn(rows, fin); g = torch.randn(rows, fout); w = torch.randn(fout, fin)
    ref = g.t().mm(x)
    gw, gb = bwd(g.to_mkldnn(), x.to_mkldnn(), w, True)
    err = ((gw - ref).abs().max() / ref.abs().max()).item()
    fl = 2 * rows * fin * fout
    fns = {"attnlab": lambda: (weight_grad(g, x), g.sum(0)),
           "mkl": lambda: (g.t().mm(x), g.sum(0)),
           "primitive": lambda: bwd(g.to_mkldnn(), x.to_mkldnn(), w, True)}
    ts = {k: [] for k in fns}
    for _ in range(3):
        for f in fns.values(): f()
    for _ in range(15):
        for k, f in fns.items():
            a = time.perf_counter(); f(); ts[k].append(time.perf_counter() - a)
    med = {k: st.median(v) for k, v in ts.items()}
    print(f"{fin:5d} -> {fout:5d}: " + "  ".join(f"{k} {v*1e3:6.2f} ms ({fl/v/1e9:4.0f})" for k, v in med.items())
          + f"  primitive/attnlab {med['attnlab']/med['primitive']:.3f}x  rel err {err:.1e}", flush=True)
