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
