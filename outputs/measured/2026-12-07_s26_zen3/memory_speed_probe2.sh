#!/bin/bash
# Second probe (the first, memory_speed_probe.sh, timed batches only, so it could not see what a
# release costs between them, and its final validation set the peaks). One run at a time, each
# 260 updates of the README's 45-minute Transformer study (its first validation at the end of
# epoch 1, update ~190, then 70 more), with step_timer.py recording every batch.
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline PYTHONPATH=$D
common="experiment=rnn_vs_transformer/transformer trainer.precision=32-true average_last=0 trainer.max_steps=260 test=false +callbacks.step_timer._target_=step_timer.StepTimer"
release="+callbacks.release_memory._target_=attnlab.callbacks.ReleaseFreedMemory"
declare -A variant=(
  [keep]="keep_freed_memory=true"
  [nokeep]="keep_freed_memory=false"
  [release50]="keep_freed_memory=true $release +callbacks.release_memory.every_n_steps=50"
  [release_val]="keep_freed_memory=true $release +callbacks.release_memory.every_n_steps=0"
  [trim128]="keep_freed_memory=false"
)
for name in ${NAMES:-keep nokeep release50 release_val trim128}; do
  tun=""; [ $name = trim128 ] && tun="glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=134217728"
  STEP_TIMER_OUT=$D/steps_$name.jsonl GLIBC_TUNABLES=$tun /usr/bin/time -v attnlab-train $common ${variant[$name]} run_name=s26_probe2_$name > $D/probe2_$name.log 2>&1
done
