#!/bin/bash
# Is the growth oneDNN's per-shape primitive caches? (Packed token counts differ from batch to
# batch, so every batch brings new matmul shapes; ideep and oneDNN each cache up to 1,024
# primitives.) Same runs as probe2 (keep_freed_memory on), 190 updates, with both caches at 64
# and at 8,192 entries.
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline PYTHONPATH=$D
common="experiment=rnn_vs_transformer/transformer trainer.precision=32-true average_last=0 trainer.max_steps=190 test=false +callbacks.step_timer._target_=step_timer.StepTimer keep_freed_memory=true"
for n in 64 8192; do
  STEP_TIMER_OUT=$D/steps_keep_cache$n.jsonl LRU_CACHE_CAPACITY=$n ONEDNN_PRIMITIVE_CACHE_CAPACITY=$n \
    /usr/bin/time -v attnlab-train $common run_name=s26_probe3_cache$n > $D/probe3_cache$n.log 2>&1
done
