#!/bin/bash
# Two 200-update Transformer runs (the first epoch and its validation), side by side, for their
# resident memory only: keep_freed_memory off, and on with ReleaseFreedMemory every 50 steps.
# The 45-minute run (keep on, no release) is the reference: wandb_memory.py reads each run's RSS.
D=outputs/measured/2026-12-07_s25_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline
common="experiment=rnn_vs_transformer/transformer trainer.precision=32-true average_last=0 trainer.max_steps=200 test=false"
/usr/bin/time -v attnlab-train $common keep_freed_memory=false run_name=s25_mem_nokeep > $D/mem_nokeep.log 2>&1 &
/usr/bin/time -v attnlab-train $common keep_freed_memory=true +callbacks.release_memory._target_=attnlab.callbacks.ReleaseFreedMemory +callbacks.release_memory.every_n_steps=50 run_name=s25_mem_release > $D/mem_release.log 2>&1 &
wait
