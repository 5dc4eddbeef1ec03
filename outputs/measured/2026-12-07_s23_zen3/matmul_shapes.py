"""Where a transformer_small fp32 training step's matmul time goes, by op and shape
(torch profiler with shapes, 4 bench batches after 4 warm-up steps), with each shape's GFLOP/s."""
import os
from collections import defaultdict
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
att = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
for b in batches: B.train_step(att, b, crit)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches: B.train_step(att, b, crit)
total = sum(e.self_cpu_time_total for e in prof.key_averages())
rows = defaultdict(lambda: [0, 0.0, 0.0])
for e in prof.key_averages(group_by_input_shape=True):
    if e.key not in ("aten::mm", "mkldnn::_linear_pointwise", "aten::addmm", "aten::bmm"):
        continue
    s = e.input_shapes
    if e.key == "aten::mm":
        (m, k), (_, n) = s[0], s[1]
    elif e.key == "aten::addmm":
        (m, k), (_, n) = s[1], s[2]
    elif e.key == "aten::bmm":
        (bb, m, k), (_, _, n) = s[0], s[1]; m *= bb
    else:
        x, w = s[0], s[1]
        m = 1
        for d in x[:-1]: m *= d
        k = x[-1]; n = w[0]
    r = rows[(e.key.split("::")[1], m, k, n)]
    r[0] += e.count; r[1] += e.self_cpu_time_total / 1e3; r[2] += 2.0 * m * k * n * e.count
print(f"self CPU total {total/1e3:,.0f} ms over {len(batches)} steps")
agg = defaultdict(lambda: [0, 0.0, 0.0])
for (op, m, k, n), (c, ms, fl) in rows.items():
    # bucket rows (token counts vary per batch)
    key = (op, "T" if m > 1024 else m, "T" if k > 1024 and k not in (8000,) else k, n)
    a = agg[key]; a[0] += c; a[1] += ms; a[2] += fl
print(f"{'op':<18} {'m':>6} {'k':>6} {'n':>6} {'calls':>6} {'ms':>9} {'share':>6} {'GFLOP/s':>8}")
for key, (c, ms, fl) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{key[0]:<18} {key[1]!s:>6} {key[2]!s:>6} {key[3]!s:>6} {c:>6} {ms:>9.1f} {100*ms*1e3/total:>5.1f}% {fl/ms/1e6:>8.1f}")
