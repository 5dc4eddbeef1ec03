# From the review of session 24 (a helper's check, rerun here): a batch that is mostly padding,
# one 300-step row among 63 rows of 10 (4.8% real), through a bi-GRU 128: packed against the
# padded GRU path (_run_gru_padded, called directly; run_padded now keeps such batches packed).
import torch, time
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from attnlab.models.recurrent import _run_gru_padded, run_padded
torch.set_num_threads(2); torch.manual_seed(0)
rnn = nn.GRU(128, 128, batch_first=True, bidirectional=True)
L = torch.tensor([300] + [10] * 63); x = torch.randn(64, 300, 128, requires_grad=True)
def packed():
    p = pack_padded_sequence(x, L, batch_first=True, enforce_sorted=False)
    o, f = rnn(p); return pad_packed_sequence(o, batch_first=True, total_length=300)[0]
def padded(): return _run_gru_padded(rnn, x, L)[0]
def run_padded_now(): return run_padded(rnn, x, L)[0]
for name, fn in (("packed", packed), ("padded", padded), ("run_padded", run_padded_now)) * 2:
    t = time.perf_counter(); fn().sum().backward(); print(name, f"{time.perf_counter()-t:.3f}s forward+backward")
