"""Where one beam-search batch's time goes (beam 4, batch 64, 32 tokens), by wall clock:
search parts (decode_step, log-softmax, ranking, reorder) and decoder modules (forward hooks).

    python outputs/measured/2026-12-03_s15_beam/breakdown.py [bf16] [hydra overrides...]

With tiny sizes (model.d_model=16 model.d_ff=32 model.d_k=4 model.d_v=4 vocab=512) the
arithmetic vanishes and what is left is per-op overhead."""
import collections, os, sys, time

import torch
from hydra import compose, initialize_config_dir

import attnlab.decoding as D
from attnlab import bench as B
from attnlab.runtime import keep_freed_memory

keep_freed_memory()
args = sys.argv[1:]
bf16 = bool(args) and args[0] == "bf16"
overrides = args[1:] if bf16 else args
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base", *overrides])
dev = torch.device("cpu")
batch = B.to_device(B.source_batch(cfg, 64), dev)
m = B.build_attnlab(cfg.model, cfg.vocab, dev, cfg.seed).eval()
acc: collections.Counter = collections.Counter()
stack: list[float] = []


def wrap(obj, name, label):
    f = getattr(obj, name)

    def timed(*a, **k):
        t = time.perf_counter()
        r = f(*a, **k)
        acc[label] += time.perf_counter() - t
        return r

    setattr(obj, name, timed)


def hook(mod, label):
    mod.register_forward_pre_hook(lambda *_: stack.append(time.perf_counter()))

    def post(*_):
        acc[label] += time.perf_counter() - stack.pop()

    mod.register_forward_hook(post)


wrap(m, "decode_step", "decode_step")
wrap(m, "reorder_decoder_state", "reorder_state")
wrap(m, "encode", "encode")
wrap(D, "_next_log_probs", "log_softmax+constraints")
wrap(D, "_best_extensions", "best_extensions")
for layer in m.decoder_layers:
    for name in ["self_attn", "cross_attn", "feed_forward"]:
        hook(getattr(layer, name), f"  {name}")
    for a in ["self_attn", "cross_attn"]:
        for p in ["q_proj", "k_proj", "v_proj", "out_proj"]:
            if hasattr(getattr(layer, a), p):
                hook(getattr(getattr(layer, a), p), f"    {a}.{p}")
    for s in ["self_sublayer", "cross_sublayer", "ff_sublayer"]:
        hook(getattr(layer, s).norm, "  layernorm")
hook(m.output_proj, "  output_proj")


def run():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return B.attnlab_search(m, batch, "beam", 32, beam_size=4, length_penalty=0.6)


run()
acc.clear()
repeats = int(os.environ.get("REPEATS", 5))
t = time.perf_counter()
for _ in range(repeats):
    run()
total = (time.perf_counter() - t) / repeats
print(f"{'bf16' if bf16 else 'fp32'} {' '.join(overrides)}: total {total * 1e3:.0f} ms/batch")
for k in ["encode", "decode_step", "log_softmax+constraints", "best_extensions", "reorder_state"]:
    print(f"{k:32s} {acc[k] / repeats * 1e3:7.1f} ms")
print("decode_step's modules (hooks):")
for k, v in sorted(acc.items()):
    if k.startswith(" "):
        print(f"{k:32s} {v / repeats * 1e3:7.1f} ms")
