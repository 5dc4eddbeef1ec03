#!/usr/bin/env bash
# Session 23 (2026-12-07), the AMD EPYC Zen 3 (family 25 model 1, 2 cores, AVX2 only) of sessions
# 20-22: every command whose output is kept here, in the order they ran. From the repository root,
# ATTNLAB_DATA_DIR pointing at ../shared/data.
set -x
D=outputs/measured/2026-12-07_s23_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-../shared/data} WANDB_MODE=offline

# At 9b236f2: where the transformer_small training step's matmul time goes, by shape (printed,
# not logged; the figures are quoted in README.md).
python $D/matmul_shapes.py
# At 9b236f2 and f94a1a4: the Luong RNN's training step, op by op (printed, not logged).
python $D/profile_luong.py
# At f94a1a4: the RNN output layer hoisted out of the step loop, A/B against the per-step code.
STEPS=24 python $D/ab_rnn_output.py > $D/ab_rnn_output_luong.log 2>&1
STEPS=24 python $D/ab_rnn_output.py model@rnn_model=rnn_bahdanau > $D/ab_rnn_output_bahdanau.log 2>&1
# The full bench at f94a1a4.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json > $D/bench_head_32-true.log 2>&1
# A clean clone's CI at f94a1a4.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run) > $D/ci_f94a1a4.log 2>&1
pip install -q --no-deps -e .   # the clone's editable install took over the package name
bash .ci/slurm-up.sh            # .ci/run stops the cluster when it ends
# Tried for the Transformer's training step, not kept (logged reruns of what was first printed).
STEPS=12 python $D/ab_packed_train.py current packed_fwd packed_both contig_bwd > $D/ab_packed_train.log 2>&1
python $D/chunked_output_loss.py > $D/chunked_output_loss.log 2>&1
INTERLEAVE=1 python $D/matmul_rates.py > $D/matmul_rates_interleaved.log 2>&1
python $D/matmul_rates.py > $D/matmul_rates.log 2>&1
STEPS=12 python $D/ab_openblas_train.py > $D/ab_openblas_train.log 2>&1
STEPS=24 python $D/ab_packed_train.py current packed_both > $D/ab_packed_train_24.log 2>&1
# A clean clone's CI at ca55c1b.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_ca55c1b.log 2>&1
pip install -q --no-deps -e . && bash .ci/slurm-up.sh
# The RNN A/B at attnlab-train's default 2,560-token batches.
STEPS=24 python $D/ab_rnn_output.py max_tokens=2560 > $D/ab_rnn_output_luong_2560.log 2>&1
# One epoch of the Luong side of the RNN-vs-Transformer study on Multi30k de->en, fp32, at f94a1a4+.
/usr/bin/time -v attnlab-train experiment=rnn_vs_transformer/luong trainer.precision=32-true trainer.max_epochs=1 test=false run_name=s23_luong_one_epoch > $D/luong_one_epoch.log 2>&1
# cp outputs/train/runs/s23_luong_one_epoch/{metrics.json,config_resolved.yaml} into $D as luong_one_epoch_{metrics.json,config.yaml}
# A clean clone's CI at 235eaff.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_235eaff.log 2>&1
