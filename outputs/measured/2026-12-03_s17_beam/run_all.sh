#!/usr/bin/env bash
# Session 17 (2026-12-03, night): the A/B runs of this session's beam-search changes, then the
# bench table, one after the other on an otherwise idle CPU, at commit 951ba0c. Run from the
# repository root with ATTNLAB_DATA_DIR pointing at the shared data.
D=outputs/measured/2026-12-03_s17_beam
set -x
python $D/ab_beam_s17.py packed 20 > $D/ab_packed_fp32.log 2>&1
python $D/ab_beam_s17.py packed bf16 12 > $D/ab_packed_bf16.log 2>&1
python $D/ab_beam_s17.py spare 12 > $D/ab_spare_fp32.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 output=$D/bench_32-true.json > $D/bench_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 precision=bf16-mixed output=$D/bench_bf16-mixed.json > $D/bench_bf16-mixed.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_beam_32-true.json > $D/bench_beam_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_beam_bf16-mixed.json > $D/bench_beam_bf16-mixed.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_base_beam10_32-true.json > $D/bench_base_beam10_32-true.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_base_beam10_bf16-mixed.json > $D/bench_base_beam10_bf16-mixed.log 2>&1
# rerun of the spare A/B (the first, ab_spare_fp32_disturbed.log, shared the CPU with a test run)
python $D/ab_beam_s17.py spare 16 > $D/ab_spare_fp32.log 2>&1
python $D/ab_beam_s17.py packed greedy 20 > $D/ab_packed_greedy_fp32.log 2>&1  # at 9d412ea
attnlab-bench model=transformer '~model@extra_models.base' sections=[train,flops] steps=4 warmup=1 output=$D/bench_base_train_32-true.json > $D/bench_base_train_32-true.log 2>&1  # at adb0932
MODEL=rnn_luong python $D/ab_beam_s17.py packed 12 > $D/ab_packed_luong_fp32.log 2>&1  # at 88f3421
