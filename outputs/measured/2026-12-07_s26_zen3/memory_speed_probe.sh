#!/bin/bash
# Speed and resident memory of the allocator choices, one run at a time on an otherwise idle
# machine, two rounds in opposite orders (this machine drifts). Each run: the
# rnn_vs_transformer Transformer (the README's 45-minute study), 180 updates (inside the first
# epoch, so no validation), fp32. tokens/s from its metrics.json (TokenThroughput, batch
# start to end), peak RSS from /usr/bin/time, the RSS path sampled every 2 s.
D=outputs/measured/2026-12-07_s26_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline
common="experiment=rnn_vs_transformer/transformer trainer.precision=32-true average_last=0 trainer.max_steps=180 test=false"
release="+callbacks.release_memory._target_=attnlab.callbacks.ReleaseFreedMemory"
declare -A variant=(
  [keep]="keep_freed_memory=true"
  [nokeep]="keep_freed_memory=false"
  [release50]="keep_freed_memory=true $release +callbacks.release_memory.every_n_steps=50"
  [release10]="keep_freed_memory=true $release +callbacks.release_memory.every_n_steps=10"
)
run() {  # name round
  local name=$1 round=$2 log=$D/probe_$1_r$2.log
  /usr/bin/time -v attnlab-train $common ${variant[$name]} run_name=s26_probe_${name}_r$round > $log 2>&1 &
  local tpid=$!
  sleep 1
  while kill -0 $tpid 2>/dev/null; do
    pid=$(pgrep -f "python.*run_name=s26_probe_${name}_r$round" | head -1)
    [ -n "$pid" ] && echo "$(date -u +%T) rss_mib $(( $(ps -o rss= -p $pid 2>/dev/null || echo 0) / 1024 ))" >> $D/probe_rss_${name}_r$round.log
    sleep 2
  done
  wait $tpid
}
for name in keep nokeep release50 release10; do run $name 1; done
for name in release10 release50 nokeep keep; do run $name 2; done
