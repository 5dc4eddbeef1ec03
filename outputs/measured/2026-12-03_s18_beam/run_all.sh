#!/usr/bin/env bash
# Session 18 (2026-12-03, night): the A/B runs of the native decoding kernels, then the bench
# table, one after the other on an otherwise idle CPU. Run from the repository root with
# ATTNLAB_DATA_DIR pointing at the shared data.
D=outputs/measured/2026-12-03_s18_beam
set -x
python $D/ab_beam_s18.py native 12 > $D/ab_native_fp32.log 2>&1
python $D/ab_beam_s18.py native bf16 12 > $D/ab_native_bf16.log 2>&1
python $D/ab_beam_s18.py native_ranking 12 > $D/ab_native_ranking_fp32.log 2>&1
python $D/ab_beam_s18.py native_attention 12 > $D/ab_native_attention_fp32.log 2>&1
python $D/ab_beam_s18.py native_cross 12 > $D/ab_native_cross_fp32.log 2>&1
python $D/ab_beam_s18.py native greedy 12 > $D/ab_native_greedy_fp32.log 2>&1
MODEL=rnn_luong python $D/ab_beam_s18.py native 8 > $D/ab_native_luong_fp32.log 2>&1
python $D/ab_beam_s18.py sdpa_self bf16 12 > $D/ab_sdpa_self_bf16.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 output=$D/bench_32-true.json > $D/bench_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 precision=bf16-mixed output=$D/bench_bf16-mixed.json > $D/bench_bf16-mixed.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_beam_32-true.json > $D/bench_beam_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_beam_bf16-mixed.json > $D/bench_beam_bf16-mixed.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_base_beam10_32-true.json > $D/bench_base_beam10_32-true.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_base_beam10_bf16-mixed.json > $D/bench_base_beam10_bf16-mixed.log 2>&1
python $D/bf16_vs_fp32.py > $D/bf16_vs_fp32.log 2>&1
# after the table: where an fp32 batch's time goes with the kernels, and the full fp32 bench
# again with 10 beam repeats (its beam row above had 3 repeats spread from 50.7 to 76.1)
python outputs/measured/2026-12-03_s15_beam/breakdown.py > $D/breakdown_fp32.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 beam.repeats=10 output=$D/bench_beam10_32-true.json > $D/bench_beam10_32-true.log 2>&1
# response times (/usr/bin/time, 3 runs each)
for i in 1 2 3; do /usr/bin/time -a -o $D/response_times.log -f "attnlab-train --help: %e s" attnlab-train --help > /dev/null 2>&1; /usr/bin/time -a -o $D/response_times.log -f "attnlab-train model.d_model=-3 (config error): %e s" attnlab-train model.d_model=-3 > /dev/null 2>&1; done
# after the kernels share attend_row (final review)
python $D/ab_beam_s18.py native 8 > $D/ab_native_fp32_after_refactor.log 2>&1
