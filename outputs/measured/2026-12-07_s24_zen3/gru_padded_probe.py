"""The Bahdanau encoder (bi-GRU 1 x 512) and a 2-layer bi-GRU over a padded batch: packed
(PyTorch's per-step path for packed input, whose backward zero-fills the whole input projection
per step) against run_padded's GRU path (one layer and direction at a time over the padded
batch, the backward direction's real steps reversed in place). Forward+backward, median of 5."""
import time, statistics, torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from attnlab.models.recurrent import run_padded
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
torch.manual_seed(0)
def packed(rnn, x, lengths):
    p = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    o, fin = rnn(p)
    return pad_packed_sequence(o, batch_first=True, total_length=x.size(1))[0], fin
def padded(rnn, x, lengths):
    o, (fin,) = run_padded(rnn, x, lengths)
    return o, fin
for name, rnn in {"bi-GRU 1x512": nn.GRU(256, 512, bidirectional=True, batch_first=True),
                  "bi-GRU 2x256": nn.GRU(256, 256, num_layers=2, bidirectional=True, batch_first=True)}.items():
    for B, k, maxL in [(264, 8, 31), (536, 5, 15), (32, 32, 40), (16, 16, 400)]:
        lengths = torch.linspace(maxL - k + 1 if k < maxL else 1, maxL, k).round().long().repeat((B + k - 1) // k)[:B]
        x = torch.randn(B, maxL, 256, requires_grad=True)
        o1, f1 = packed(rnn, x, lengths); o2, f2 = padded(rnn, x, lengths)
        diff = max(float((o1 - o2).abs().max()), float((f1 - f2).abs().max()))
        ts = {}
        for f in (packed, padded):
            t = []
            for r in range(6):
                s = time.perf_counter(); o, fin = f(rnn, x, lengths); (o.sum() + fin.sum()).backward(); t.append(time.perf_counter() - s)
            ts[f.__name__] = statistics.median(t[1:])
        print(f"{name}  B {B:4d} lengths {k:3d} max {maxL:4d}: packed {ts['packed']*1e3:8.1f} ms, padded {ts['padded']*1e3:8.1f} ms ({ts['packed']/ts['padded']:.2f}x); max |diff| {diff:.1e}", flush=True)
