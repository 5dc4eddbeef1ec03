import os, sys, time, statistics, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
import attnlab.decoding as D
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
BF16 = 'bf16' in sys.argv
R = int(next((a for a in sys.argv[1:] if a.isdigit()), 12))
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batch = B.source_batch(cfg, 64)
m = B.build_attnlab(cfg.model, cfg.vocab, torch.device('cpu'), cfg.seed).eval()
orig_topk, orig_be = D._topk_lowest_index_first, D._best_extensions
stats = {'calls': 0, 'bad_rows': 0, 'rows': 0}
def topk_rowwise(x, k, spare=None):
    width = min(k + 1, x.size(1))
    top_values, top_idx = D._row_topk(x, width)
    ok = top_values[:, k - 1] > top_values[:, width - 1]
    idx = top_idx.sort(dim=1).values
    values = x.gather(1, idx)
    order = values.argsort(dim=1, descending=True, stable=True)[:, :k]
    values, idx = values.gather(1, order), idx.gather(1, order)
    bad = (~ok).nonzero().squeeze(1)
    stats['calls'] += 1; stats['rows'] += x.size(0); stats['bad_rows'] += bad.numel()
    if bad.numel():
        v_b, i_b = orig_topk(x.index_select(0, bad), k, None)
        values[bad], idx[bad] = v_b, i_b
    return values, idx
def set_new(new):
    D._topk_lowest_index_first = topk_rowwise if new else orig_topk
def search():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
        h = D.generate(m, batch.src, batch.src_pad_mask, strategy="beam", bos_id=B.BOS, eos_id=B.EOS, max_len_a=0, max_len_b=31, min_len=31, beam_size=4, length_penalty=0.6)
    return [(x[0].tokens, x[0].log_prob) for x in h]
set_new(False); a = search(); set_new(True); b = search()
print('identical', sum(x == y for x, y in zip(a, b)), '/', len(a), stats)
t = {False: [], True: []}
for r in range(R):
    for mode in ((False, True) if r % 2 == 0 else (True, False)):
        set_new(mode); s = time.perf_counter(); search(); t[mode].append(time.perf_counter() - s)
r_ = [x / y for x, y in zip(t[False], t[True])]
print('old %.0f new %.0f ms; old/new median %.3f mean %.3f' % (statistics.median(t[False]) * 1e3, statistics.median(t[True]) * 1e3, statistics.median(r_), statistics.mean(r_)), sorted('%.2f' % x for x in r_))
