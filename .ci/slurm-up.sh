#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost (munged, slurmctld, slurmd) for the SLURM launcher
# tests; ../shared/docs/slurm-local.md is the recipe. Needs root and Debian's package mirrors.
set -euo pipefail
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
[ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
chmod 400 /etc/munge/munge.key
# A munged still exiting (slurm-down just ran) or still starting has no socket yet: retry.
for _ in $(seq 20); do
  pgrep -x munged >/dev/null || munged --force
  if munge -n 2>/dev/null | unmunge 2>/dev/null | grep -q Success; then break; fi
  sleep 0.5
done
munge -n | unmunge | grep -q Success

host=$(hostname)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
NodeName=$host CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do
  if srun -N1 --time=1 true 2>/dev/null; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "slurm-up: the cluster did not answer srun" >&2
exit 1
