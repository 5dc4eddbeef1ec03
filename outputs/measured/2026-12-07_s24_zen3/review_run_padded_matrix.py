# From the review of session 24 (a helper's script, rerun here): run_padded against the packed run
# in fp64 over GRU/LSTM, 1-3 layers, uni-/bidirectional, with and without bias, proj_size, rows
# of length 1, a batch of one: outputs, final states and every gradient.
import torch, itertools
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from attnlab.models.recurrent import run_padded
torch.manual_seed(0)
def ref(rnn, x, lengths):
    p = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    o, f = rnn(p)
    o, _ = pad_packed_sequence(o, batch_first=True, total_length=x.size(1))
    return o, f if isinstance(f, tuple) else (f,)
def check(cell, layers, bidir, bias, lengths, S, dtype=torch.float64, proj=0):
    kw = dict(num_layers=layers, bidirectional=bidir, bias=bias, batch_first=True)
    if proj: kw['proj_size']=proj
    rnn = cell(5, 4, **kw).to(dtype)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), S, 5, dtype=dtype, requires_grad=True)
    o1, f1 = run_padded(rnn, x, lengths)
    pr = torch.randn_like(o1); fp = [torch.randn_like(f) for f in f1]
    def loss(o, f): return (o*pr).sum() + sum((a*b).sum() for a, b in zip(f, fp))
    g1 = torch.autograd.grad(loss(o1, f1), [x, *rnn.parameters()])
    o2, f2 = ref(rnn, x, lengths)
    g2 = torch.autograd.grad(loss(o2, f2), [x, *rnn.parameters()])
    ok = torch.allclose(o1, o2) and all(torch.allclose(a, b) for a, b in zip(f1, f2)) and all(torch.allclose(a, b) for a, b in zip(g1, g2)) and len(f1)==len(f2) and all(a.shape==b.shape for a,b in zip(f1,f2))
    if not ok:
        print("MISMATCH", cell.__name__, layers, bidir, bias, lengths.tolist(), S, proj,
              (o1-o2).abs().max().item(), [ (a-b).abs().max().item() for a,b in zip(f1,f2)], [ (a-b).abs().max().item() for a,b in zip(g1,g2)])
    return ok
n=0; bad=0
for cell in (nn.GRU, nn.LSTM):
  for layers, bidir, bias in itertools.product((1,3),(False,True),(False,True)):
    for lengths, S in [([1],1),([1],4),([3],5),([1,1,1],3),([4,4,4],4),([4,4,4],6),([1,5,2,5,1],7),([2,3],3)]:
        n+=1; bad += not check(cell, layers, bidir, bias, lengths, S)
for lengths, S in [([1,5,2,5,1],7),([3],3)]:
    n+=1; bad += not check(nn.LSTM, 2, True, True, lengths, S, proj=3)
print(n, "cases", bad, "bad")
