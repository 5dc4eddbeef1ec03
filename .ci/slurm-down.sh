#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh started.
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
pkill -x munged 2>/dev/null
exit 0
