"""glibc keeps freed tensor memory for reuse during a CPU run, and hands it back when told."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from attnlab import runtime
from attnlab.callbacks import ReleaseFreedMemory

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt/trim")


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@linux
def test_freed_memory_is_kept_and_then_released() -> None:
    assert runtime.keep_freed_memory()
    keep = torch.ones(1024)  # something live after the big buffer, so it is not the heap's top
    big = torch.ones(256 * 2**20 // 4)  # 256 MiB, touched
    after = torch.ones(1024)
    before_free = resident_mib()
    del big
    kept = resident_mib()
    assert kept > before_free - 64  # glibc kept the freed pages
    assert runtime.release_freed_memory()
    assert resident_mib() < kept - 192  # and gave them back
    del keep, after


def test_release_runs_every_n_steps_once_and_after_validation(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(runtime, "release_freed_memory", lambda: calls.append(1) or True)
    callback = ReleaseFreedMemory(every_n_steps=3)
    trainer = SimpleNamespace(global_step=0)
    for step in [0, 1, 2, 3, 3, 4, 5, 6]:  # step 3 twice: gradient accumulation
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, None, None, 0)
    assert len(calls) == 2  # steps 3 and 6
    callback.on_validation_end(trainer, None)
    assert len(calls) == 3
    quiet = ReleaseFreedMemory(every_n_steps=0)
    quiet.on_train_batch_end(SimpleNamespace(global_step=100), None, None, None, 0)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="every_n_steps"):
        ReleaseFreedMemory(every_n_steps=-1)
