#!/usr/bin/env bash
# The measurements of session 16 (2026-12-03, evening), one after the other on an otherwise idle
# CPU, at commit 3c0dfd7 (fp32 linear layers through oneDNN). Run from the repository root with
# ATTNLAB_DATA_DIR pointing at the shared data.
D=outputs/measured/2026-12-03_s16_bench
set -x
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 output=$D/bench_32-true.json > $D/bench_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 precision=bf16-mixed output=$D/bench_bf16-mixed.json > $D/bench_bf16-mixed.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_beam_32-true.json > $D/bench_beam_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_beam_bf16-mixed.json > $D/bench_beam_bf16-mixed.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[train,flops,beam] steps=4 warmup=1 output=$D/bench_base_32-true.json > $D/bench_base_32-true.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] precision=bf16-mixed output=$D/bench_base_beam_bf16-mixed.json > $D/bench_base_beam_bf16-mixed.log 2>&1
# Later, at 283145a (the review fixes; the same code path), the paper base's beam with 10 repeats:
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 output=$D/bench_base_beam10_32-true.json > $D/bench_base_beam10_32-true.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[beam] beam.repeats=10 precision=bf16-mixed output=$D/bench_base_beam10_bf16-mixed.json > $D/bench_base_beam10_bf16-mixed.log 2>&1
