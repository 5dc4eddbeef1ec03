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

# Clean-clone CI of the kernels' commit, then the README's 45-minute runs at 3393b9e (resident
# memory of the Luong run sampled once a minute alongside; the Transformer's read from its W&B log).
# rm -rf ../ci-check && git clone -q . ../ci-check && (cd ../ci-check && CI=true bash .ci/run; echo "rc $?") > $D/ci_9e9bc19.log 2>&1
$D/rnn_vs_transformer_45min.sh > $D/rnn_vs_transformer_45min.log 2>&1 &
# started by hand at 19:52 UTC, 2.5 minutes into the Luong run:
#   $D/rss_sampler.sh > $D/rss_luong_45min.log 2>&1 &
wait
PYTHONPATH=. python $D/wandb_memory.py outputs/train/runs/s25_rvt_transformer > $D/wandb_memory_transformer.log
python $D/rvt_rows.py transformer luong > $D/rvt_rows.log

# Luong's concat score through the kernels (aa454e0).
STEPS=12 python $D/ab_additive_scores.py model@rnn_model=rnn_luong rnn_model.score=concat > $D/ab_additive_scores_luong_concat.log 2>&1

# Memory: 200 updates with keep_freed_memory off, and on with ReleaseFreedMemory every 50 steps.
$D/memory_probes.sh
PYTHONPATH=. python $D/wandb_memory.py outputs/train/runs/s25_mem_nokeep 200 > $D/wandb_memory_nokeep.log
PYTHONPATH=. python $D/wandb_memory.py outputs/train/runs/s25_mem_release 200 > $D/wandb_memory_release.log
PYTHONPATH=. python $D/wandb_memory.py outputs/train/runs/s25_rvt_transformer 200 > $D/wandb_memory_transformer_fine.log
