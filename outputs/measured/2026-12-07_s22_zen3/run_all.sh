#!/usr/bin/env bash
# Session 22 (2026-12-07), the AMD EPYC Zen 3 (AVX2 only) of sessions 20-21: every command whose
# output is kept here, in the order they ran. From the repository root, ATTNLAB_DATA_DIR pointing
# at ../shared/data.
set -x
D=outputs/measured/2026-12-07_s22_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-../shared/data} WANDB_MODE=offline

# At 64d5beb plus the first version of the between-steps probe (it took a turn in every round;
# the review moved it after each round in b327e2f): the train section with it.
attnlab-bench sections=[train,flops] steps=8 output=$D/bench_train_probe_32-true.json > $D/bench_train_probe_32-true.log 2>&1
# A clean clone's CI at 4ac30ff.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_4ac30ff.log 2>&1
pip install -q --no-deps -e .   # the clone's editable install took over the package name
bash .ci/slurm-up.sh            # .ci/run stops the cluster when it ends
# The full bench at b327e2f.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json > $D/bench_head_32-true.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_b327e2f.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_d28aadc.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_802612f.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_26e7908.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_d18829b.log 2>&1
