#!/usr/bin/env bash
# Session 28 (2026-12-08), the AMD EPYC Zen 5 of session 27 (cpu family 26, 2 cores, AVX-512):
# every command whose figures README.md and the closing note quote, in the order run.
# From the repository root, with ATTNLAB_DATA_DIR=/work/shared/data, after
# pip install -c .ci/constraints-cpu.txt -e ".[dev,bench]".
set -euo pipefail
D=outputs/measured/2026-12-08_s28_zen5
S27=outputs/measured/2026-12-08_s27_zen5

# 1. Where the step's time went at session 27's HEAD (c406a30): profiler by op and shape, the
#    copies, and each oneDNN matmul's rate against 480 GFLOP/s.
WARM=3 python $S27/profile_transformer.py > $D/profile_head.log 2>&1
python $S27/copies.py > $D/copies_head.log 2>&1
python $D/matmul_rates.py > $D/matmul_rates_head.log 2>&1

# 2. Transposed copies: torch's one-thread copy against 3-d views (printed, not kept: 0.99 ms
#    plain against 1.36-1.49 ms split for 7,552 x 256).
python $D/transpose_copies.py
# The weight-gradient paths, incl. oneDNN's inner-product backward-weights primitive (not kept:
# 0.56-1.14x, faster only for small layers).
python $D/dw_paths.py > $D/dw_paths.log 2>&1
# Dropout's mask application by fewer torch passes (printed, not kept: no faster).
python $D/dropout_passes.py

# 3. 66e8b05: the native transpose in the weight gradients, training step A/B.
ROUNDS=8 python $D/ab_native_transpose.py > $D/ab_native_transpose_small.log 2>&1

# 4. 562f550: native training attention against SDPA, alone and in the step.
python $D/attention_native_probe.py > $D/attention_native_probe.log 2>&1
ROUNDS=8 python $D/ab_native_attention.py > $D/ab_native_attention_small.log 2>&1
ROUNDS=3 python $D/ab_native_attention.py model=transformer > $D/ab_native_attention_base.log 2>&1

# 5. 656266f: native (Philox) dropout, in the step.
ROUNDS=8 python $D/ab_native_dropout.py > $D/ab_native_dropout_small.log 2>&1

# 6. The bench at 656266f.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_656266f.json > $D/bench_656266f.log 2>&1

# 7. Real training on the new paths: fp32 (4 epochs) and the default bf16 (3 epochs), and the
#    bf16 run's best checkpoint scored (its default test score averages steps 100-500).
ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline /usr/bin/time -v attnlab-train trainer.precision=32-true average_last=0 trainer.max_epochs=4 run_name=s28_fp32_4ep > $D/train_fp32_4ep.log 2>&1
MODEL_KEY=rnn_model ROUNDS=8 python $D/ab_native_dropout.py > $D/ab_native_dropout_luong.log 2>&1
ATTNLAB_DATA_DIR=/work/shared/data WANDB_MODE=offline /usr/bin/time -v attnlab-train trainer.max_epochs=3 run_name=s28_bf16_3ep > $D/train_bf16_3ep.log 2>&1
attnlab-eval ckpt_path=outputs/train/runs/s28_bf16_3ep/checkpoints/epoch002-score19.06.ckpt data.split=test_2016_flickr run_name=s28_bf16_3ep_best > $D/eval_bf16_3ep_best.log 2>&1

# 8. Profiles at 656266f: fp32 (profile_transformer.py ignores precision=: fp32) and bf16.
WARM=2 python $S27/profile_transformer.py precision=bf16-mixed > $D/profile_656266f.log 2>&1
WARM=2 python $D/profile_bf16.py > $D/profile_bf16_656266f.log 2>&1

# 9. Tried, not kept: the native attention for bf16 storage (fp32 arithmetic), against a working
#    tree with it (since reverted): alone 0.87-1.31x the bf16 matmul path, in the step 0.995x.
PRECISION=bf16 ROUNDS=8 python $D/ab_native_attention.py > $D/ab_native_attention_small_bf16.log 2>&1
python $D/attention_bf16_probe.py > $D/attention_bf16_probe.log 2>&1

# 10. Clean-clone CI at 1dcb2a5 (from /work/main: rm -rf ../ci-check && git clone -q . ../ci-check
#     && (cd ../ci-check && CI=true bash .ci/run)), then the native kernels' tests against builds
#     for an AVX2-only CPU (znver3) and for plain x86-64 (no AVX: the scalar paths).
python $D/other_isas.py znver3 > $D/other_isas_znver3.log 2>&1
python $D/other_isas.py x86-64 > $D/other_isas_x86-64.log 2>&1

# 11. The bench again (the same code as 656266f; a 3-second test run shared the CPU in its
#     training section).
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_6c722dc_repeat.json > $D/bench_6c722dc_repeat.log 2>&1

# 12. Clean-clone CI at 505f5ab (the same command as in 10): 720 passed, ci_505f5ab.log.

# 13. Response times at d6ec9af, three times each.
for i in 1 2 3; do /usr/bin/time -a -o $D/response_times.log -f "attnlab-train --help: %e s" attnlab-train --help > /dev/null 2>&1; /usr/bin/time -a -o $D/response_times.log -f "attnlab-train model.d_model=-3 (config error): %e s" attnlab-train model.d_model=-3 > /dev/null 2>&1; done

# 14. Clean-clone CI at d43c259 (the same command as in 10): 720 passed, ci_d43c259.log.

# 15. Clean-clone CI at 9409d4c (the same command as in 10): 722 passed, ci_9409d4c.log.

# 16. The dropout A/B under bf16 autocast (this CPU's default precision).
PRECISION=bf16 ROUNDS=8 python $D/ab_native_dropout.py > $D/ab_native_dropout_small_bf16.log 2>&1

# 17. Clean-clone CI at 275b359 (the same command as in 10): 723 passed, ci_275b359.log.

# 18. Review: clean-clone CI at 4e7c72f (kernels.c's shared transpose routine): 723 passed,
#     ci_4e7c72f.log. Then the transpose and dropout timings, saved (the figures first quoted
#     came from the same code printed by unsaved scratch runs; these logs replace them).
python $D/transpose_native.py > $D/transpose_native.log 2>&1
python $D/dropout_native.py > $D/dropout_native.log 2>&1
