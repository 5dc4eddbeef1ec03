# fp32 matmul rates on this machine: square sizes (the MFU peak) and the GEMM shapes of a
# transformer_small training step at 8192-token batches (rows x d_model x d_ff / vocab).
import time, torch
def best_rate(m, k, n, repeats=5):
    a, b = torch.randn(m, k), torch.randn(k, n); a @ b
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter(); a @ b; best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best
for n in (512, 1024, 2048):
    print(f"{n}^2: {best_rate(n, n, n):.1f} GFLOP/s")
# ... and of a beam-search step (64 sentences x 4 beams = 256 rows).
for m, k, n in [(8192, 256, 256), (8192, 256, 1024), (8192, 1024, 256), (8192, 256, 8000),
                (256, 256, 256), (256, 256, 1024), (256, 1024, 256), (256, 256, 8000)]:
    print(f"{m}x{k} @ {k}x{n}: {best_rate(m, k, n):.1f} GFLOP/s")
