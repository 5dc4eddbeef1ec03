"""Where a job of a parallel sweep runs: one GPU of its own, or its share of the CPU cores.

Jobs started by ``hydra/launcher=parallel`` claim a slot through a lock file in the sweep
directory (released when the job's process ends, even if it crashes), so two jobs running at
the same time never share a GPU, whatever order the launcher starts them in.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class Placement:
    slot: int
    device: str  # "cuda:<i>" or "cpu"
    threads: int | None  # torch threads for a CPU job
    lock: IO[Any] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {"slot": self.slot, "device": self.device, "threads": self.threads}


def claim_slot(folder: Path, n_slots: int, poll_seconds: float = 1.0) -> tuple[int, IO[Any]]:
    """The first free slot of ``n_slots`` (waiting for one if all are taken) and its held lock."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(n_slots):
            handle = open(folder / f"slot{slot}.lock", "w")  # noqa: SIM115 (held for the job)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return slot, handle
        time.sleep(poll_seconds)


def place_parallel_job(
    sweep_dir: Path, n_jobs: int, gpus: int, cpus: int | None = None
) -> Placement:
    """A GPU per job when there are GPUs, else ``cpus // n_jobs`` threads per job."""
    if gpus > 0:
        slot, lock = claim_slot(sweep_dir / ".devices", gpus)
        return Placement(slot, f"cuda:{slot}", None, lock)
    slot, lock = claim_slot(sweep_dir / ".devices", max(n_jobs, 1))
    threads = max(1, (cpus or os.cpu_count() or 1) // max(n_jobs, 1))
    return Placement(slot, "cpu", threads, lock)
