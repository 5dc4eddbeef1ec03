#!/bin/bash
# probe2's keep run again (260 updates, step_timer.py), with the packed row counts rounded
# (the working tree on top of a209c50): does resident memory still grow?
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline PYTHONPATH=$D
STEP_TIMER_OUT=$D/steps_keep_rounded.jsonl /usr/bin/time -v attnlab-train experiment=rnn_vs_transformer/transformer \
  trainer.precision=32-true average_last=0 trainer.max_steps=260 test=false \
  +callbacks.step_timer._target_=step_timer.StepTimer keep_freed_memory=true run_name=s26_probe4_rounded > $D/probe4_rounded.log 2>&1
