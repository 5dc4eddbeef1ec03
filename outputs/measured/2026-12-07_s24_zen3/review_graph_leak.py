# From the review of session 24 (a helper's script): RSS (MiB) over six forward + decoder-only
# backward passes, `python review_graph_leak.py ref|step`. Before 75be4bc "step" grew
# 355 -> 508; the log here is at 75be4bc.
import torch, gc, sys
from attnlab.models.rnn import LuongRNN
from attnlab.models import step_attention as sa
if sys.argv[1] == "ref": sa.StepAttention.applies = staticmethod(lambda m_: False)
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
torch.manual_seed(0)
m2 = LuongRNN(30, 30, embed_dim=16, hidden_size=256, dropout=0.0, score="general").train()
src = torch.randint(4, 30, (32, 40)); pm = torch.zeros(32, 40, dtype=torch.bool); tgt = torch.randint(4, 30, (32, 30))
r = []
for i in range(6):
    out = m2(src, pm, tgt); out.sum().backward(inputs=list(m2.decoder.parameters())); del out; gc.collect()
    r.append(round(rss()))
print(sys.argv[1], r)
