#!/usr/bin/env bash
# The default command in exact fp32, 7 minutes each, oneDNN linear layers on, then off (torch's
# F.linear / MKL), one after the other on an otherwise idle CPU, commit 3c0dfd7.
set -x
for onednn in true false; do
  attnlab-train trainer.precision=32-true trainer.max_time=00:00:07:00 test=false \
    onednn_linear=$onednn run_name=s16_fp32_onednn_$onednn logger=csv
done
