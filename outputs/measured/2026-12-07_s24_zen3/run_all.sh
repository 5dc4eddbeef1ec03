#!/usr/bin/env bash
# Session 24 (2026-12-07), AMD EPYC Zen 3 (family 25 model 1, 2 cores, AVX2 only, fp32).
# Every measurement of this folder, in the order it ran, from the repository root, with
# ATTNLAB_DATA_DIR=/work/shared/data and WANDB_MODE=offline.
set -euo pipefail
D=outputs/measured/2026-12-07_s24_zen3
# Luong without input feeding: the decoder stepped against LSTM + attention over all steps.
STEPS=12 python $D/ab_luong_no_feeding.py > $D/ab_luong_no_feeding.log 2>&1
# Where the default Luong step goes, by op and shape (before the encoder change).
python $D/profile_luong_shapes.py > $D/profile_luong_shapes.log 2>&1
# The encoders packed against one fused call per distinct length, alone.
python $D/encoder_grouping_probe.py > $D/encoder_grouping_probe.log 2>&1
# The whole Luong step, packed encoder against run_padded: with the first limit,
# max(8, S // 4) distinct lengths, then with the kept one, 16.
STEPS=16 python $D/ab_encoder_by_length.py > $D/ab_encoder_by_length_luong.log 2>&1
STEPS=16 python $D/ab_encoder_by_length.py > $D/ab_encoder_by_length_luong_16.log 2>&1
# The profile again, after the change.
python $D/profile_luong_shapes.py > $D/profile_luong_shapes_by_length.log 2>&1
# At 49762c8 plus StepAttention: the Luong step with the per-step autograd attention against it.
STEPS=16 python $D/ab_step_attention.py > $D/ab_step_attention.log 2>&1
# One real Multi30k epoch of the Luong study at the commit with all three changes (s23: 148.1 s, val BLEU 14.36).
/usr/bin/time -v attnlab-train experiment=rnn_vs_transformer/luong trainer.precision=32-true trainer.max_epochs=1 test=false run_name=s24_luong_one_epoch > $D/luong_one_epoch.log 2>&1
# cp outputs/train/runs/s24_luong_one_epoch/{metrics.json,config_resolved.yaml} into $D as luong_one_epoch_{metrics.json,config.yaml}
# The full bench.
/usr/bin/time -v attnlab-bench steps=8 warmup=2 beam.repeats=5 output=$D/bench_head_32-true.json > $D/bench_head_32-true.log 2>&1
# The default Luong step, before this session (packed encoder, per-step autograd attention)
# against 85a42b3, at the bench's 8,192-token batches and attnlab-train's 2,560.
STEPS=24 python $D/ab_luong_session24.py max_tokens=2560 > $D/ab_luong_session24_2560.log 2>&1
STEPS=16 python $D/ab_luong_session24.py > $D/ab_luong_session24_8192.log 2>&1
# Where the Bahdanau step goes (85a42b3): the packed GRU encoder's per-step zero-fills.
python $D/profile_luong_shapes.py model@rnn_model=rnn_bahdanau > $D/profile_bahdanau_shapes.log 2>&1
# With run_padded's GRU path: the encoder alone, then the Bahdanau step against the packed encoder.
python $D/gru_padded_probe.py > $D/gru_padded_probe.log 2>&1
STEPS=12 python $D/ab_encoder_by_length.py model@rnn_model=rnn_bahdanau > $D/ab_encoder_gru_bahdanau.log 2>&1
python $D/grad_check_encoders.py > $D/grad_check_encoders.log 2>&1
# Tried, not kept: StepAttention's context part for Bahdanau (the context's memory gradient summed
# once; its additive score stays per step), against the per-step autograd attention.
STEPS=12 python $D/ab_step_attention.py model@rnn_model=rnn_bahdanau > $D/ab_step_attention_bahdanau.log 2>&1
# Where the Bahdanau step goes with the padded GRU encoder (0695a3f).
python $D/profile_luong_shapes.py model@rnn_model=rnn_bahdanau > $D/profile_bahdanau_shapes_padded_gru.log 2>&1
# A clean clone's CI at 0695a3f, then at the final commit (its log name says which).
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_0695a3f.log 2>&1
pip install -q --no-deps -e .
# After the review's fixes (75be4bc) and the shared test helper (c5892ec), clean-clone CI again.
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_75be4bc.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_c5892ec.log 2>&1
pip install -q --no-deps -e .
# The review's scripts, at 0695a3f (a worktree on PYTHONPATH) and at 75be4bc.
git worktree add -q /tmp/wt 0695a3f
(PYTHONPATH=/tmp/wt/src python $D/review_partial_backward.py; PYTHONPATH=/tmp/wt/src python $D/review_graph_leak.py ref; PYTHONPATH=/tmp/wt/src python $D/review_graph_leak.py step) > $D/review_before_0695a3f.log 2>&1
git worktree remove --force /tmp/wt
python $D/review_partial_backward.py > $D/review_partial_backward_75be4bc.log 2>&1
(python $D/review_graph_leak.py ref; python $D/review_graph_leak.py step) > $D/review_graph_leak_75be4bc.log 2>&1
# After a final read of the change: the review's two other checks, rerun at the final code.
python $D/review_gru_fill.py > $D/review_gru_fill.log 2>&1
python $D/review_run_padded_matrix.py > $D/review_run_padded_matrix.log 2>&1
rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_3f53ef6.log 2>&1
pip install -q --no-deps -e .
