"""bf16 training step of transformer_small with three CPU attention paths, interleaved."""
import math, time, sys
import torch, torch.nn.functional as F
from hydra import compose, initialize_config_module
import attnlab.config
from attnlab import bench as B
from attnlab.models import attention as A
from attnlab.runtime import keep_freed_memory
keep_freed_memory(); torch.set_num_threads(2)
with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
    cfg = compose("bench", overrides=["max_tokens=2560", "~model@extra_models.base"])
batches = B.synthetic_batches(cfg); crit = B.criterion_for(cfg)
sdpa = F.scaled_dot_product_attention
def fp32_sdpa(q, k, v, **kw):
    if q.dtype == torch.bfloat16:
        return sdpa(q.float(), k.float(), v.float(), **kw).to(q.dtype)
    return sdpa(q, k, v, **kw)
def math_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if is_causal:
        t, s = scores.shape[-2:]
        m = torch.ones(t, s, dtype=torch.bool).tril(s - t)
        attn_mask = m if attn_mask is None else attn_mask & m
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    w = scores.float().softmax(-1).to(q.dtype)
    if dropout_p: w = F.dropout(w, dropout_p)
    return w @ v
paths = {"sdpa_bf16": sdpa, "sdpa_fp32": fp32_sdpa, "math_bf16": math_sdpa}
variants = {}
for name in paths:
    model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), 1)
    variants[name] = B.variant(name, model, 1e-4)
def step(v, b):
    v.optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_sum, _ = crit(v.logits(b), b.tgt_out)
    (loss_sum / b.num_target_tokens).backward(); v.optimizer.step()
    return loss_sum.item()
times = {n: [] for n in paths}
# same weights: check losses agree on the first batch
for name, v in variants.items():
    A.F.scaled_dot_product_attention = paths[name]
    print(name, "first loss", step(v, batches[0]))
for rnd in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    for b in batches:
        for name, v in variants.items():
            A.F.scaled_dot_product_attention = paths[name]
            t = time.perf_counter(); step(v, b); times[name].append((time.perf_counter() - t, sum(B.token_counts(b))))
for name, ts in times.items():
    rates = sorted(tok / s for s, tok in ts)
    print(f"{name}: median {rates[len(rates)//2]:,.0f} tokens/s (min {rates[0]:,.0f}, max {rates[-1]:,.0f})")
