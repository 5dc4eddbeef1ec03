"""Each oneDNN matmul of a transformer_small fp32 training step (the bench's batches), by
shape: its rate and the time it loses against a 480 GFLOP/s matmul."""
import os, sys
from collections import defaultdict
import torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
with initialize_config_dir(config_dir=conf, version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *sys.argv[1:]])
batches = B.synthetic_batches(cfg)
crit = B.criterion_for(cfg)
model = B.variant("attnlab", B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed), cfg.lr)
for _ in range(3):
    for b in batches: B.train_step(model, b, crit)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
    for b in batches: B.train_step(model, b, crit)
PEAK = 480e9
agg = defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # time, self time, flops, calls
def kind(shapes):
    (m, k), (n, k2) = shapes[0], shapes[1]
    big = max(m, n)
    return f"M={m if m < 2000 else 'rows'} K={k if k < 2000 else 'rows'} N={n if n < 2000 else 'rows'}"
total_step = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
for e in prof.events():
    if e.name == "mkldnn::_linear_pointwise":
        s = e.input_shapes
        import math
        m, k, n = math.prod(s[0][:-1]), s[0][-1], s[1][0]
        key = kind([(m, k), (n, k)])
        a = agg[key]; a[0] += e.cpu_time_total / 1e6; a[2] += 2 * m * k * n; a[3] += 1
tot_lost = 0
print(f"profiled time {total_step:.3f} s (4 steps)")
for key, (t, _, fl, n) in sorted(agg.items(), key=lambda kv: -(kv[1][0] - kv[1][2] / PEAK)):
    lost = t - fl / PEAK; tot_lost += lost
    print(f"{key:32s} {n:4d} calls {t*1e3:8.1f} ms {fl/t/1e9:6.0f} GFLOP/s  lost {lost*1e3:7.1f} ms")
print(f"lost in all: {tot_lost*1e3:.1f} ms = {tot_lost/total_step*100:.1f}% of the profiled time")
