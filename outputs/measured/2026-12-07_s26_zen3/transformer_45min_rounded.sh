#!/bin/bash
# Session 26: the README's 45-minute Transformer run (session 25's command) at eefaa23 (packed
# row counts rounded), on an otherwise idle machine, with step_timer.py recording each update's
# resident memory: does it still grow as session 25's did (3.4 -> 8.65 GB)?
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline PYTHONPATH=$D
echo "== start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)"
STEP_TIMER_OUT=$D/steps_rvt_transformer_rounded.jsonl /usr/bin/time -v attnlab-train experiment=rnn_vs_transformer/transformer \
  trainer.precision=32-true average_last=0 +callbacks.step_timer._target_=step_timer.StepTimer \
  run_name=s26_rvt_transformer_rounded > $D/rvt_transformer_rounded.log 2>&1
echo "== rc $? end $(date -u +%FT%TZ)"
