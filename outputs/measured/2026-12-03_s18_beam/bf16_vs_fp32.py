"""How close bf16 beam search comes to fp32's, with the native kernels and without them
(transformer_small, the bench's beam batch: beam 4, batch 64, 32 tokens)."""
import os, sys
import torch
from hydra import compose, initialize_config_dir
import attnlab.decoding as D
from attnlab import bench as B, native
from attnlab.runtime import keep_freed_memory
keep_freed_memory()
with initialize_config_dir(config_dir=os.path.abspath("conf"), version_base=None):
    cfg = compose("bench", overrides=["~model@extra_models.base"])
batch = B.source_batch(cfg, 64)
model = B.build_attnlab(cfg.model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
def search(bf16, enabled):
    native.use_native_kernels(enabled)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hyps = D.generate(model, batch.src, batch.src_pad_mask, strategy="beam", bos_id=B.BOS, eos_id=B.EOS,
                          max_len_a=0, max_len_b=31, min_len=31, beam_size=4, length_penalty=0.6)
    return [h[0].tokens for h in hyps]
ref = search(False, False)
for enabled in (True, False):
    out = search(True, enabled)
    same_sent = sum(a == b for a, b in zip(out, ref))
    same_tok = sum(x == y for a, b in zip(out, ref) for x, y in zip(a, b))
    total = sum(len(a) for a in ref)
    print(f"bf16 {'native' if enabled else 'pytorch'} vs fp32 (pytorch): best hypothesis identical for {same_sent}/64 sentences, tokens equal at {same_tok}/{total} positions")
