# From the review of session 24 (a helper's script, kept as it ran): StepAttention against the plain
# attention (ref) after backward twice, two micro-batches, a partial backward then a full one,
# and a second derivative. Before 75be4bc, "partial-then-full step" gave 0.012876 (twice the
# reference); the log here is at 75be4bc.
import torch, gc, weakref
from attnlab.models.rnn import LuongRNN
from attnlab.models import step_attention as sa
def batch(B=3, S=7):
    src = torch.randint(4, 30, (B, S), generator=torch.Generator().manual_seed(1))
    pm = torch.zeros(B, S, dtype=torch.bool); pm[1, 4:] = True
    return src.masked_fill(pm, 0), pm
torch.manual_seed(0)
m = LuongRNN(30, 30, embed_dim=16, hidden_size=24, dropout=0.0, score="general").double().train()
src, pm = batch(); tgt = torch.randint(4, 30, (3, 5))
def run(disable):
    orig = sa.StepAttention.applies
    if disable: sa.StepAttention.applies = staticmethod(lambda m_: False)
    try: return m(src, pm, tgt).square().mean()
    finally: sa.StepAttention.applies = orig
enc_params = list(m.encoder.parameters())
dec_params = list(m.decoder.parameters())
def g(p): return torch.cat([q.grad.flatten() for q in p])
# 1. retain_graph twice
for disable in (True, False):
    m.zero_grad(); l = run(disable); l.backward(retain_graph=True); l.backward()
    print("retain x2", "ref" if disable else "step", g(enc_params).norm().item())
# 2. grad accumulation two microbatches
for disable in (True, False):
    m.zero_grad(); run(disable).backward(); run(disable).backward()
    print("accum x2", "ref" if disable else "step", g(enc_params).norm().item())
# 3. partial grad first (decoder only), then full backward
for disable in (True, False):
    m.zero_grad(); l = run(disable)
    torch.autograd.grad(l, dec_params, retain_graph=True)
    l.backward()
    print("partial-then-full", "ref" if disable else "step", g(enc_params).norm().item())
# 3b. backward(inputs=decoder params) then backward(inputs=encoder params)
for disable in (True, False):
    m.zero_grad(); l = run(disable)
    l.backward(inputs=dec_params, retain_graph=True)
    l.backward(inputs=enc_params)
    print("inputs= split", "ref" if disable else "step", g(enc_params).norm().item())
# 4. create_graph double backward through encoder grads (gradient penalty on encoder)
for disable in (True, False):
    m.zero_grad(); l = run(disable)
    try:
        gr = torch.autograd.grad(l, enc_params, create_graph=True)
        pen = sum(x.square().sum() for x in gr)
        pen.backward()
        print("double backward", "ref" if disable else "step", g(enc_params).norm().item())
    except Exception as e:
        print("double backward", "ref" if disable else "step", "ERROR", str(e)[:120])
