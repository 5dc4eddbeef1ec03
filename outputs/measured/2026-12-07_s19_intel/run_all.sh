#!/usr/bin/env bash
# Session 19 (2026-12-07): the bench and the A/B runs on this session's machine, an Intel Xeon
# with AMX (2 cores, 480 MB L3, glibc 2.36), at 1b805d1 (no code change), one after the other on
# an otherwise idle CPU. Run from the repository root with ATTNLAB_DATA_DIR pointing at the
# shared data. Order as run.
D=outputs/measured/2026-12-07_s19_intel
set -x
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 beam.repeats=10 output=$D/bench_32-true.json > $D/bench_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 sections=[train,flops] onednn_linear=false output=$D/bench_train_onednn_off.json > $D/bench_train_onednn_off.log 2>&1
python outputs/measured/2026-12-03_s16_train/profile_train.py 32 > $D/profile_train_fp32.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 sections=[train,flops] keep_freed_memory=false output=$D/bench_train_keep_off.json > $D/bench_train_keep_off.log 2>&1
THP_MEM_ALLOC_ENABLE=1 attnlab-bench '~model@extra_models.base' steps=8 warmup=2 sections=[train,flops] output=$D/bench_train_thp.json > $D/bench_train_thp.log 2>&1
THP_MEM_ALLOC_ENABLE=1 python $D/profile_train_vs_marian.py > $D/profile_train_vs_marian.log 2>&1
python $D/ab_train.py unpack 8; python $D/ab_train.py dropout 8; python $D/ab_train.py all 20   # printed only, see README
python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py native 12 > $D/ab_native_fp32.log 2>&1
python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py native bf16 12 > $D/ab_native_bf16.log 2>&1
python outputs/measured/2026-12-03_s18_beam/ab_beam_s18.py native greedy 12 > $D/ab_native_greedy_fp32.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=5 output=$D/bench_base_beam_32-true.json > $D/bench_base_beam_32-true.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=5 precision=bf16-mixed output=$D/bench_base_beam_bf16-mixed.json > $D/bench_base_beam_bf16-mixed.log 2>&1
REPEATS=3 python outputs/measured/2026-12-03_s15_beam/breakdown.py bf16 model=transformer > $D/breakdown_base_bf16.log 2>&1
REPEATS=3 python outputs/measured/2026-12-03_s15_beam/breakdown.py model=transformer > $D/breakdown_base_fp32.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 beam.repeats=10 precision=bf16-mixed output=$D/bench_bf16-mixed.json > $D/bench_bf16-mixed.log 2>&1
for i in 1 2 3; do /usr/bin/time -a -o $D/response_times.log -f "attnlab-train --help: %e s" attnlab-train --help > /dev/null 2>&1; /usr/bin/time -a -o $D/response_times.log -f "attnlab-train model.d_model=-3 (config error): %e s" attnlab-train model.d_model=-3 > /dev/null 2>&1; done
# after the table: oneDNN against MKL on this CPU (interleaved), then the bench with the new
# default onednn_linear=auto (fp32 through MKL here)
STEPS=12 python outputs/measured/2026-12-03_s16_train/ab_onednn.py > $D/ab_onednn_fp32.log 2>&1
python outputs/measured/2026-12-03_s16_train/ab_beam_onednn.py > $D/ab_beam_onednn_fp32.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 beam.repeats=10 output=$D/bench_auto_32-true.json > $D/bench_auto_32-true.log 2>&1
REPEATS=8 python $D/ab_beam_onednn_bf16.py > $D/ab_beam_onednn_bf16.log 2>&1
# at 49cd735 (onednn_linear: auto): the paper base's training, and the small model's twice more
attnlab-bench model=transformer '~model@extra_models.base' sections=[train,flops] steps=4 warmup=1 output=$D/bench_base_train_32-true.json > $D/bench_base_train_32-true.log 2>&1
for i in 1 2; do attnlab-bench '~model@extra_models.base' sections=[train,flops] steps=8 warmup=2 output=$D/bench_train_auto_$i.json > $D/bench_train_auto_$i.log 2>&1; done
# searches: packed oneDNN against MKL for both sizes, then the paper base's beam with the final auto
REPEATS=6 python outputs/measured/2026-12-03_s16_train/ab_beam_onednn.py model=transformer > $D/ab_beam_onednn_base_fp32.log 2>&1
REPEATS=12 python outputs/measured/2026-12-03_s16_train/ab_beam_onednn.py > $D/ab_beam_onednn_fp32_12.log 2>&1
attnlab-bench model=transformer sections=[beam] beam.repeats=5 output=$D/bench_beam_auto2_32-true.json > $D/bench_beam_auto2_32-true.log 2>&1
REPEATS=8 python outputs/measured/2026-12-03_s16_train/ab_beam_onednn.py model=transformer > $D/ab_beam_onednn_base_fp32_8.log 2>&1
# at 336add9 (before the fused ReLU): the default command with both models
attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_final_32-true.json > $D/bench_final_32-true.log 2>&1
attnlab-bench steps=8 warmup=2 beam.repeats=5 precision=bf16-mixed output=$D/bench_final_bf16-mixed.json > $D/bench_final_bf16-mixed.log 2>&1
# the feed-forward ReLU fused into the packed matmul (after 2913547), A/B and the paper base's bf16 beam
python $D/ab_fused_relu.py bf16 8 model=transformer > $D/ab_fused_relu_base_bf16.log 2>&1
python $D/ab_fused_relu.py 12 > $D/ab_fused_relu_small_fp32.log 2>&1
python $D/ab_fused_relu.py 8 model=transformer > $D/ab_fused_relu_base_fp32.log 2>&1
python $D/ab_fused_relu.py bf16 12 > $D/ab_fused_relu_small_bf16.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_base_beam_relu_bf16-mixed.json > $D/bench_base_beam_relu_bf16-mixed.log 2>&1
# at 154c79a, the session's last code change: the default command with both models
attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json > $D/bench_head_32-true.log 2>&1
attnlab-bench steps=8 warmup=2 beam.repeats=5 precision=bf16-mixed output=$D/bench_head_bf16-mixed.json > $D/bench_head_bf16-mixed.log 2>&1
