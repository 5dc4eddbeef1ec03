"""The gradients of one bench batch (dropout off), packed encoder against run_padded, for both RNN
families: each parameter's largest difference relative to its largest gradient."""
import os, sys, types, torch
from hydra import compose, initialize_config_dir
from attnlab import bench as B
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
conf = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../conf"))
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ab_luong_session24.py")).read()
exec(src[src.index("def packed_forward"):src.index("conf = ")])  # the pre-session encoder forward
for family in ("rnn_luong", "rnn_bahdanau"):
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("bench", overrides=["~model@extra_models.base", f"model@rnn_model={family}"])
    from attnlab.models.dropout import dropout  # noqa: F401  (packed_forward's names)
    from attnlab.models.recurrent import run_recurrent  # noqa: F401
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: F401
    b = B.synthetic_batches(cfg)[0]
    grads = []
    for packed in (True, False):
        model = B.build_attnlab(cfg.rnn_model, cfg.vocab, torch.device("cpu"), cfg.seed).eval()
        if packed:
            model.encoder.forward = types.MethodType(packed_forward, model.encoder)
        model(b.src, b.src_pad_mask, b.tgt_in, b.target_positions).logsumexp(-1).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    rel = {n: float((grads[0][n] - grads[1][n]).abs().max() / grads[0][n].abs().max()) for n in grads[0]}
    worst = max(rel, key=rel.get)
    print(family, "largest relative gradient difference:", worst, f"{rel[worst]:.1e}")
