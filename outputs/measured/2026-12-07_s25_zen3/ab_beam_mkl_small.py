"""In-situ probe: fp32 beam search (bench beam section, transformer_small) with every packed
weight through oneDNN (HEAD) against the small ones (out_features < MIN_ONEDNN_OUT) through MKL
torch.addmm on a contiguous W^T made once per search. Interleaved repeats (a probe: outputs
not compared)."""
import os, sys, statistics, time
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.models import linear as L
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
b = cfg.beam
batch = B.source_batch(cfg, b.batch_size)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
MIN_OUT = int(os.environ.get("MIN_ONEDNN_OUT", 4096))
orig = L._linear_packed
wt_cache = {}
def patched(x, weight, bias, activation):
    if L._scopes.depth and x.dtype == torch.float32 and not torch.is_grad_enabled() and weight.size(0) < MIN_OUT:
        key = id(weight)
        n = L._scopes.calls.get(key, 0) + 1
        L._scopes.calls[key] = n
        if n < 2:
            return None
        wt = wt_cache.get(key)
        if wt is None:
            wt = wt_cache[key] = weight.detach().t().contiguous()
        x2 = x.reshape(-1, x.size(-1))
        out = torch.addmm(bias, x2, wt) if bias is not None else torch.mm(x2, wt)
        if activation == "relu":
            out.relu_()
        return out.view(*x.shape[:-1], wt.size(1))
    return orig(x, weight, bias, activation)
def search(mode):
    L._linear_packed = patched if mode == "mkl_small" else orig
    wt_cache.clear()
    out = B.attnlab_search(model, batch, "beam", b.new_tokens, beam_size=b.beam_size, length_penalty=b.length_penalty)
    L._linear_packed = orig
    return out
names = ["onednn_packed", "mkl_small"]
run = B.interleave(names, 1, int(os.environ.get("REPEATS", 10)), lambda n, r: search(n), torch.device("cpu"))
print(run.warmup_note("runs"))
for n in names:
    print(n, f"median {statistics.median([b.batch_size / s for s in run.seconds[n]]):.1f} sentences/s")
ratios = sorted(x / y for x, y in zip(run.seconds["onednn_packed"], run.seconds["mkl_small"]))
q = statistics.quantiles(ratios, n=4)
print(f"onednn_packed/mkl_small seconds: median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}-{q[2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
