#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started.
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
pkill -x munged 2>/dev/null
for _ in $(seq 20); do  # gone before a following slurm-up looks for it
  pgrep -x munged >/dev/null || break
  sleep 0.5
done
exit 0
