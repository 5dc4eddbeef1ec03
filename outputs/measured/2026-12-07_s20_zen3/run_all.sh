#!/usr/bin/env bash
# Session 20 (2026-12-07): the bench and the A/B runs on this session's machine, an AMD EPYC
# Zen 3 (family 25 model 1; 2 cores, 32 MB L3, AVX2 only: no AVX-512, no bf16 hardware; glibc
# 2.36, GCC 12.2), one after the other on an otherwise idle CPU. Run from the repository root
# with ATTNLAB_DATA_DIR pointing at the shared data. Order as run.
D=outputs/measured/2026-12-07_s20_zen3
set -x
# at e46ac03 (session 19's HEAD, no change): the default command with both models
attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json > $D/bench_head_32-true.log 2>&1
# packed oneDNN against MKL in an fp32 search; native kernels against the PyTorch path
REPEATS=8 python outputs/measured/2026-12-03_s16_train/ab_beam_onednn.py > $D/ab_beam_onednn_fp32.log 2>&1
python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py native 10 > $D/ab_native_fp32.log 2>&1
REPEATS=3 python outputs/measured/2026-12-03_s15_beam/breakdown.py > $D/breakdown_small_fp32.log 2>&1
# why the kernels gained little: GCC 12 left the exp loops scalar on AVX2 (trapping math)
python $D/lst_microbench.py                       # printed only: native 3.79 ms vs torch 2.97 ms
cc -O3 -march=native -fopenmp $D/exp_passes.c -o /tmp/passes -lm && /tmp/passes   # exp pass 5.8-6.7 ms
# at 67afed8 (-fno-trapping-math)
python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py native 10 > $D/ab_native_fp32_notrap.log 2>&1
REPEATS=3 python outputs/measured/2026-12-03_s15_beam/breakdown.py > $D/breakdown_small_fp32_notrap.log 2>&1
attnlab-bench sections=[beam] beam.repeats=10 output=$D/bench_beam_notrap_32-true.json > $D/bench_beam_notrap_32-true.log 2>&1
# oneDNN against MKL in fp32 training (onednn_linear auto picks oneDNN on AMD)
STEPS=10 python outputs/measured/2026-12-03_s16_train/ab_onednn.py > $D/ab_onednn_fp32.log 2>&1
STEPS=24 python outputs/measured/2026-12-03_s16_train/ab_onednn.py > $D/ab_onednn_fp32_24.log 2>&1
python outputs/measured/2026-12-03_s16_train/profile_train.py 32 > $D/profile_train_fp32.log 2>&1
# the loss in native kernels (e8480a9): microbenchmark, then the training step interleaved
python $D/loss_microbench.py                      # printed only, see README.md
STEPS=16 python $D/ab_loss.py > $D/ab_loss_fp32.log 2>&1
# clean-clone CI at e095ebd, then the default command again at e095ebd
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_e095ebd.log 2>&1
attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_e095ebd_32-true.json > $D/bench_e095ebd_32-true.log 2>&1
# after the review fixes (bd20fb4): clean-clone CI, two default epochs with and without the
# native kernels, and the loss A/B at attnlab-train's 2,560-token batches
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_bd20fb4.log 2>&1
bash $D/train_native_loss/command.sh > $D/train_native_loss/train.log 2>&1   # then copied metrics.json, config, csv
STEPS=30 python $D/ab_loss.py max_tokens=2560 > $D/ab_loss_fp32_2560.log 2>&1
# at 378380c (the bench's per-step speedup rows): clean-clone CI, then the small model's training
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_378380c.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[train,flops] steps=12 warmup=2 output=$D/bench_train_speedup_32-true.json > $D/bench_train_speedup_32-true.log 2>&1
