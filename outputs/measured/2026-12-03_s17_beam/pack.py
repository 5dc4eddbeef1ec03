import time, torch
torch.manual_seed(0)
torch.set_num_threads(2)
ops = torch.ops
def t(fn, n=30):
    for _ in range(3): fn()
    ts=[]
    for _ in range(n):
        s=time.perf_counter(); fn(); ts.append(time.perf_counter()-s)
    ts.sort(); return ts[len(ts)//2]*1e3
for (M,K,N) in [(256,256,8000),(256,256,256),(256,256,1024),(256,1024,256),(64,256,8000)]:
    x=torch.randn(M,K); w=torch.randn(N,K)*0.05; b=torch.randn(N)
    ref=torch.nn.functional.linear(x,w,b)
    res={}
    res['F.linear']=t(lambda: torch.nn.functional.linear(x,w,b))
    res['onednn']=t(lambda: ops.mkldnn._linear_pointwise(x,w,b,"none",[],""))
    try:
        pw=ops.mkl._mkl_reorder_linear_weight(w, M)
        y=ops.mkl._mkl_linear(x,pw,w,b,M); assert torch.allclose(y,ref,atol=1e-3,rtol=1e-4)
        res['mkl_packed']=t(lambda: ops.mkl._mkl_linear(x,pw,w,b,M))
    except Exception as e: print('mkl',e)
    try:
        dw=ops.mkldnn._reorder_linear_weight(w, M) if hasattr(ops.mkldnn,'_reorder_linear_weight') else torch._C._nn.mkldnn_reorder_linear_weight(w.to_mkldnn(), M)
        y=ops.mkldnn._linear_pointwise(x,dw,b,"none",[],""); assert torch.allclose(y,ref,atol=1e-3,rtol=1e-4)
        res['onednn_packed']=t(lambda: ops.mkldnn._linear_pointwise(x,dw,b,"none",[],""))
    except Exception as e: print('dnn',repr(e)[:300])
    fl=2*M*K*N/1e9
    print((M,K,N), {k:f"{v:.3f}ms {fl/v*1e3:.0f}GF" for k,v in res.items()})
