#!/bin/bash
# Session 25 (2026-12-07), the AMD EPYC Zen 3 of sessions 20-24 (2 cores, AVX2, fp32), in the
# order run. Each A/B interleaves its variants step by step in one process.
set -x
D=outputs/measured/2026-12-07_s25_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline

# Where the steps' time goes at 9bc87df (torch profiler, the bench's 8,192-token batches).
python outputs/measured/2026-12-07_s24_zen3/profile_luong_shapes.py > $D/profile_luong_head.log 2>&1
python $D/page_faults_rnn.py model@rnn_model=rnn_bahdanau > $D/page_faults_bahdanau.log 2>&1
python $D/profile_transformer.py > $D/profile_transformer_head.log 2>&1
python $D/profile_beam.py > $D/profile_beam_head.log 2>&1

# MKL against oneDNN at the output layer's, a beam step's and the training step's shapes,
# then in a beam search (small weights through MKL, the output layer through packed oneDNN).
python $D/output_layer_matmuls.py > $D/output_layer_matmuls.log 2>&1
python $D/beam_matmuls.py > $D/beam_matmuls.log 2>&1
python $D/train_matmuls.py > $D/train_matmuls.log 2>&1
REPEATS=12 python $D/ab_beam_mkl_small.py > $D/ab_beam_mkl_small.log 2>&1

# Bahdanau's additive scores by native kernels (AdditiveStepScores) against autograd.
STEPS=12 python $D/ab_additive_scores.py > $D/ab_additive_scores.log 2>&1
STEPS=24 python $D/ab_additive_scores.py max_tokens=2560 > $D/ab_additive_scores_2560.log 2>&1
REPEATS=8 python $D/ab_additive_scores_beam.py > $D/ab_additive_scores_beam.log 2>&1
