import os, sys, numpy as np, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.data.batching import _greedy_cut
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dm = B.load_datamodule(B.Bench(cfg, torch.device("cpu")))
sp = dm.split_data("train")
s = np.array([len(x) + 1 for x in sp.sources]); t = np.array([len(x) + 1 for x in sp.targets])
cost = np.maximum(s, t)
rng = np.random.default_rng(0)
def evaluate(order, budget):
    starts, ends = _greedy_cut(cost[order], budget, None)
    ps = pt = rs = rt = 0
    for a, b in zip(starts, ends):
        idx = order[a:b]; n = b - a
        ps += n * s[idx].max(); pt += n * t[idx].max(); rs += s[idx].sum(); rt += t[idx].sum()
    return 100 * (1 - rs / ps), 100 * (1 - rt / pt), len(starts)
perm = rng.permutation(len(s))
keys = {
  "max only": (perm, cost),
  "max, t-s": (perm, t - s, cost),
  "max, s": (perm, s, cost),
  "max, min(s,t)": (perm, np.minimum(s, t), cost),
  "max, sign*min": (perm, np.where(t >= s, s, 2 * cost - t), cost),
  "snake": (perm, (t - s) * np.where(cost % 2 == 0, 1, -1), cost),
  "max//2, t-s, max": (perm, cost, t - s, cost // 2),
  "sum, t-s": (perm, t - s, s + t),
  "max//3, t-s": (perm, cost, t - s, cost // 3),
}
for budget in (2560, 8192):
    for name, k in keys.items():
        print(budget, name, [round(x, 2) for x in evaluate(np.lexsort(k), budget)])
