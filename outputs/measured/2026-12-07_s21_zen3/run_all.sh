#!/usr/bin/env bash
# Session 21 (2026-12-07), the AMD EPYC Zen 3 (AVX2 only) of session 20: every command whose
# output is kept here, in the order they ran. From the repository root, the local SLURM cluster up
# (bash .ci/slurm-up.sh), ATTNLAB_DATA_DIR pointing at ../shared/data.
set -x
D=outputs/measured/2026-12-07_s21_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-../shared/data} WANDB_MODE=offline

# The SLURM preemption test that failed the project's CI: alone, three times (at 95cbf2c) ...
for i in 1 2 3; do ATTNLAB_SLURM_UP=1 timeout 1200 python -m pytest -x -q tests/test_slurm.py \
  -k preempted -p no:cacheprovider --durations=1 2>&1 | tail -5; done > $D/slurm_alone.log
# ... and with two single-threaded matmul loops on the two cores (the first run at 95cbf2c, the
# other two with ba60da1's test).
(python $D/load.py & python $D/load.py & for i in 1 2 3; do ATTNLAB_SLURM_UP=1 timeout 1300 \
  python -m pytest -x -q tests/test_slurm.py -k preempted -p no:cacheprovider --durations=1 \
  --basetemp=/tmp/s21/pt$i 2>&1 | tail -5; done; kill %1 %2) > $D/slurm_load.log 2>&1
# A clean clone's CI at ba60da1.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_ba60da1.log 2>&1
pip install -q --no-deps -e .   # the clone's editable install took over the package name
bash .ci/slurm-up.sh            # .ci/run stops the cluster when it ends
# Training step breakdown, attnlab and Marian (torch profiler, 4 steps each).
python outputs/measured/2026-12-07_s19_intel/profile_train_vs_marian.py > $D/profile_train_vs_marian_fp32.log 2>&1
# fp32 training: SDPA against attention by two matmuls (not kept).
python $D/ab_attention_fp32.py 16 | tee $D/ab_attention_fp32.log
# Beam search: op-level profile; Q, K, V stacked in fp32 (not kept).
python outputs/measured/2026-12-03_s16_beam/profile_beam.py > $D/profile_beam_fp32.log 2>&1
python $D/ab_stacked_qkv_fp32.py 10 | tee $D/ab_stacked_qkv_fp32.log
# The test with a held job, and with a requeued job sent back held as it starts (a failed launch).
bash $D/requeuehold_check.sh $D/slurm_hold.log hold
bash $D/requeuehold_check.sh $D/slurm_requeuehold.log
grep -E "JobId=4[23][^0-9]" /var/log/slurm/slurmctld.log > $D/slurmctld_hold_checks.log
# The bench at 03968cc.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json \
  > $D/bench_head_32-true.log 2> $D/bench_head_32-true.time
# A beam batch split over two Python threads, one intra-op thread each (not kept).
python $D/split_probe.py | tee $D/split_probe.log
# Page faults per training step, attnlab and Marian in turns; then the train section with the
# settle-aware warm-up (1b68fd6).
STEPS=12 python $D/loss_page_faults.py | tee $D/loss_page_faults.log
attnlab-bench sections=[train,flops] steps=8 output=$D/bench_train_settled_32-true.json > $D/bench_train_settled_32-true.log 2>&1
# A clean clone's CI with everything above.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_858040f.log 2>&1
# After the review's fixes to the SLURM test: the requeuehold check again.
bash $D/requeuehold_check.sh $D/slurm_requeuehold_review.log
grep -E "JobId=54[^0-9]" /var/log/slurm/slurmctld.log > $D/slurmctld_requeuehold_review.log
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_4ddb983.log 2>&1
# At b51cb75: the beam section with the settled warm-up, then the train section once more.
attnlab-bench sections=[beam] beam.repeats=5 output=$D/bench_beam_settled_32-true.json > $D/bench_beam_settled_32-true.log 2>&1
attnlab-bench sections=[train,flops] steps=8 output=$D/bench_train_settled2_32-true.json > $D/bench_train_settled2_32-true.log 2>&1
