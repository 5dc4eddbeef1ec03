#!/bin/bash
# Session 26 (2026-12-07), the AMD EPYC Zen 3 of sessions 20-25 (2 cores, AVX2, fp32), in the
# order run. Everything one at a time on an otherwise idle machine unless said.
set -x
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline

# 1. Allocator choices for the memory growth found in session 25 (at 574d046, then a209c50).
#    The first try (failed_first_try/) ended every 180-update run with "Early stopping
#    conditioned on metric val/loss which is not available": fixed in a209c50.
$D/memory_speed_probe.sh    # probe_*.log: tokens/s counts batches only (it cannot see a release)
$D/memory_speed_probe2.sh   # steps_{keep,nokeep,release50,release_val,trim128}.jsonl
python $D/steps_table.py $D/steps_{keep,nokeep,release50,release_val,trim128}.jsonl > $D/steps_table_probe2.log
for v in release50 keep nokeep; do echo "== $v"; python $D/release_cost.py $D/steps_$v.jsonl 50; done > $D/release_cost.log

# 2. Is it oneDNN's per-shape primitives? Caches at 64 and 8,192 entries; one shape at a time;
#    the same real batches met for the first time and again.
$D/memory_probe3_caches.sh
python $D/primitive_cache_probe.py > $D/primitive_cache_probe.log 2>&1
LRU_CACHE_CAPACITY=64 ONEDNN_PRIMITIVE_CACHE_CAPACITY=64 python $D/primitive_cache_probe.py > $D/primitive_cache_probe_cache64.log 2>&1
python $D/shape_novelty_probe.py 40 > $D/shape_novelty_probe.log 2>&1

# 3. Packed row counts rounded (eefaa23): interleaved speed, then memory over 260 updates and
#    over the README's 45 minutes.
python $D/ab_rounded_rows.py 140 20 > $D/ab_rounded_rows.log 2>&1
$D/memory_probe4_rounded.sh
python $D/steps_table.py $D/steps_keep.jsonl $D/steps_keep_cache64.jsonl $D/steps_keep_cache8192.jsonl $D/steps_keep_rounded.jsonl > $D/steps_table_rounded.log
$D/transformer_45min_rounded.sh > $D/transformer_45min_rounded.out 2>&1
python $D/rvt_row.py > $D/rvt_row.log
PYTHONPATH=. python $D/rss_side_by_side.py outputs/train/runs/s25_rvt_transformer outputs/train/runs/s26_rvt_transformer_rounded > $D/rss_side_by_side.log
# Clean-clone CI of a025b45 (eefaa23's docstrings corrected): failed in the torch.compile test
# (cached_property's lock); fixed in 6baf7f0, whose clean-clone CI passed.
# rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_a025b45.log 2>&1
# rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_6baf7f0.log 2>&1
# rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_c199c64.log 2>&1
