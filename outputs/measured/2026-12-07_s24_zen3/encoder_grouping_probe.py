"""The RNN encoders over a padded batch: packed (pack_padded_sequence, PyTorch's per-time-step
path for packed input) against one call per distinct length without padding (oneDNN's fused
RNN). Forward+backward and forward-only seconds, median of 5 after one warm-up, for batches of
B sentences whose lengths are spread evenly over k distinct values up to max_len."""
import time, statistics, torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from attnlab.runtime import keep_freed_memory; keep_freed_memory()
torch.manual_seed(0)
encoders = {
    "luong (bi-LSTM 2x128)": nn.LSTM(256, 128, num_layers=2, bidirectional=True, batch_first=True),
    "bahdanau (bi-GRU 1x512)": nn.GRU(256, 512, num_layers=1, bidirectional=True, batch_first=True),
}
def packed(rnn, x, lengths):
    p = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    o, fin = rnn(p)
    return pad_packed_sequence(o, batch_first=True, total_length=x.size(1))[0], fin
def grouped(rnn, x, lengths):
    outs, fins, order = [], [], []
    for L in lengths.unique().tolist():
        idx = (lengths == L).nonzero().squeeze(1)
        o, fin = rnn(x.index_select(0, idx)[:, :L])
        outs.append(nn.functional.pad(o, (0, 0, 0, x.size(1) - L))); fins.append(fin); order.append(idx)
    inverse = torch.cat(order).argsort()
    return torch.cat(outs).index_select(0, inverse), None
def timed(f, grad):
    ts = []
    for r in range(6):
        s = time.perf_counter()
        if grad:
            o, _ = f(); o.sum().backward()
        else:
            with torch.no_grad(): f()
        if r: ts.append(time.perf_counter() - s)
    return statistics.median(ts)
print(f"{'encoder':26s} {'B':>4s} {'k':>4s} {'maxL':>5s}  fwd+bwd packed / grouped (ratio)   fwd packed / grouped (ratio)")
for name, rnn in encoders.items():
    for B, k, maxL in [(264, 8, 31), (536, 5, 15), (64, 20, 40), (32, 32, 40), (16, 16, 100), (16, 16, 400), (8, 8, 60), (128, 60, 80)]:
        lengths = torch.linspace(maxL - k + 1 if k < maxL else 1, maxL, k).round().long().repeat((B + k - 1) // k)[:B]
        x = torch.randn(B, maxL, 256, requires_grad=True)
        r = {}
        for g in (True, False):
            r[g] = [timed(lambda: f(rnn, x, lengths), g) for f in (packed, grouped)]
        print(f"{name:26s} {B:4d} {lengths.unique().numel():4d} {maxL:5d}  {r[True][0]*1e3:8.1f} / {r[True][1]*1e3:8.1f} ms ({r[True][0]/r[True][1]:.2f}x)   {r[False][0]*1e3:8.1f} / {r[False][1]*1e3:8.1f} ms ({r[False][0]/r[False][1]:.2f}x)", flush=True)
