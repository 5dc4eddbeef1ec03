#!/bin/bash
# Samples the resident memory of the running attnlab-train (the Luong 45-minute run) once a
# minute: does it grow over the run? (ps, negligible CPU)
while pgrep -f "attnlab-train experiment=rnn_vs_transformer/luong" > /dev/null; do
  pid=$(pgrep -f "python.*attnlab-train experiment=rnn_vs_transformer/luong" | head -1)
  [ -n "$pid" ] && echo "$(date -u +%T) rss_mib $(( $(ps -o rss= -p $pid) / 1024 ))"
  sleep 60
done
