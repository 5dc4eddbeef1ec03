#!/bin/bash
# Session 25: the README's "RNN vs Transformer, de->en, 45 minutes each" runs repeated at this
# session's code, one after the other on an otherwise idle machine (fp32, best checkpoint as in
# the table of 2026-11-27): the Transformer, then Luong.
D=outputs/measured/2026-12-07_s25_zen3
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-/work/shared/data} WANDB_MODE=offline
for family in transformer luong; do
  echo "== $family start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)"
  /usr/bin/time -v attnlab-train experiment=rnn_vs_transformer/$family trainer.precision=32-true average_last=0 run_name=s25_rvt_$family > $D/rvt_$family.log 2>&1
  echo "== $family rc $? end $(date -u +%FT%TZ)"
done
