#!/usr/bin/env bash
# The measurements of session 13 (2026-12-03), one after the other on an otherwise idle CPU.
# Run from the repository root with ATTNLAB_DATA_DIR pointing at the shared data. The A/B
# scripts import HEAD~ (ef47615, before this session) from /tmp/old as attnlab_old:
#   git archive ef47615 src/attnlab | tar -x -C /tmp/old; mv /tmp/old/src/attnlab /tmp/old/attnlab_old
#   and rename its absolute imports (see the README in this folder).
D=outputs/measured/2026-12-03_s13_bench
set -x
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 output=$D/bench_32-true.json > $D/bench_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' steps=8 warmup=2 precision=bf16-mixed output=$D/bench_bf16-mixed.json > $D/bench_bf16-mixed.log 2>&1
STEPS=8 python $D/ab_train.py 32 > $D/ab_train_32.log 2>&1
STEPS=8 python $D/ab_train.py bf16 > $D/ab_train_bf16.log 2>&1
REPEATS=8 python outputs/measured/2026-12-03_s13_beam/ab_beam.py 32 > outputs/measured/2026-12-03_s13_beam/ab_beam_fp32.log 2>&1
attnlab-bench model=transformer '~model@extra_models.base' sections=[train,flops,beam] steps=4 warmup=1 output=outputs/measured/2026-12-03_s13_bench/bench_base_32-true.json > outputs/measured/2026-12-03_s13_bench/bench_base_32-true.log 2>&1
attnlab-bench '~model@extra_models.base' sections=[padding,data] output=$D/bench_padding.json > $D/bench_padding.log 2>&1
