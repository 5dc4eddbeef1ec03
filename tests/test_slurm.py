"""A sweep runs through a real SLURM cluster (started by .ci/run; see .ci/slurm-up.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


def slurm_answers() -> bool:
    if shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


SLURM_REQUIRED = os.environ.get("ATTNLAB_SLURM_UP") == "1"  # .ci/run started a cluster


@pytest.mark.skipif(
    not SLURM_REQUIRED and not slurm_answers(),
    reason="no SLURM cluster here (.ci/slurm-up.sh starts a one-node one as root)",
)
def test_a_two_job_sweep_runs_through_slurm(tmp_path):
    assert slurm_answers(), "ATTNLAB_SLURM_UP=1 but sinfo does not answer"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnlab.train",
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.mem_gb=1",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.timeout_min=10",
            "experiment=toy",
            "trainer.max_epochs=1",
            "trainer.max_time=null",
            "trainer.enable_progress_bar=false",
            "seed=1,2",
            "run_name=slurm",
            f"paths.log_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "train" / "multiruns" / "slurm"
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["seed"] == int(job) + 1
        assert metrics["test"]["test"]["exact_match"] >= 0
    slurm_logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert len(slurm_logs) == 2  # two SLURM jobs, each with its own log
