#!/usr/bin/env bash
# The SLURM preemption test with a launch failure forced on it: as soon as the requeued job is
# allocated again, `scontrol requeuehold` sends it back to the queue held (state PENDING,
# "job requeued in held state"), which is where a job whose launch fails ends up. The test must
# release it and still pass. Needs the local cluster up (.ci/slurm-up.sh, which logs to
# /var/log/slurm). usage: requeuehold_check.sh <log>   (or: ... hold, to `scontrol hold` the job
# the moment it is requeued instead)
cd "$(dirname "$0")/../../.."
log=/var/log/slurm/slurmctld.log
n=$(grep -c "Requeuing JobId" $log)
(ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-../shared/data} ATTNLAB_SLURM_UP=1 WANDB_MODE=offline timeout 1300 \
  python -m pytest -x -q tests/test_slurm.py -k preempted -p no:cacheprovider --durations=1 > "$1" 2>&1 &)
until [ "$(grep -c "Requeuing JobId" $log)" -gt "$n" ]; do sleep 0.25; done
job=$(grep "Requeuing JobId" $log | tail -1 | sed 's/.*JobId=\([0-9]*\).*/\1/')
if [ "${2:-}" = hold ]; then scontrol hold "$job"; echo "held $job"; exit 0; fi
a=$(grep -c "Allocate JobId=$job " $log)
until [ "$(grep -c "Allocate JobId=$job " $log)" -gt "$a" ]; do sleep 0.1; done
scontrol requeuehold "$job" && echo "requeuehold $job"
