import os, sys, time, torch, collections
from hydra import compose, initialize_config_dir
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
m = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
acc = collections.Counter()
stack = []
def pre(mod, args, kwargs=None):
    stack.append(time.perf_counter())
def mk(label):
    def post(mod, args, out):
        acc[label] += time.perf_counter() - stack.pop()
    return post
for i, layer in enumerate(m.decoder_layers):
    for name in ["self_attn", "cross_attn", "feed_forward"]:
        mod = getattr(layer, name)
        mod.register_forward_pre_hook(pre); mod.register_forward_hook(mk(name))
    for name in ["q_proj", "k_proj", "v_proj", "out_proj"]:
        for a in ["self_attn", "cross_attn"]:
            mod = getattr(getattr(layer, a), name)
            mod.register_forward_pre_hook(pre); mod.register_forward_hook(mk(a + "." + name))
    for s in ["self_sublayer", "cross_sublayer", "ff_sublayer"]:
        mod = getattr(layer, s).norm
        mod.register_forward_pre_hook(pre); mod.register_forward_hook(mk("layernorm"))
m.output_proj.register_forward_pre_hook(pre); m.output_proj.register_forward_hook(mk("output_proj"))
bf16 = len(sys.argv) > 1
def run():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return B.attnlab_search(m, batch, "beam", 32, beam_size=4, length_penalty=0.6)
run(); acc.clear()
t = time.perf_counter()
for _ in range(3): run()
total = (time.perf_counter() - t) / 3
print(f"total {total*1e3:.0f} ms/batch (enc included in hooks? encoder not hooked)")
for k, v in sorted(acc.items()): print(f"  {k:28s} {v/3*1e3:7.1f} ms")
