"""A probe callback (not part of attnlab): for every training batch, when it started, how long
its forward/backward/update took, and the process's resident memory at its end; plus when each
validation started and ended. The interval between two batch starts is the wall-clock cost of
a step, callbacks (ReleaseFreedMemory) and data loading included. Written as JSON lines to
``$STEP_TIMER_OUT`` at the end of fit."""
import json
import os
import time

import lightning as L


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class StepTimer(L.Callback):
    def __init__(self):
        self.rows = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append({"event": "batch", "step": trainer.global_step, "start": self._start,
                          "busy": time.perf_counter() - self._start, "rss": _rss_mib(),
                          "tokens": int(batch.num_source_tokens + batch.num_target_tokens)})

    def on_validation_start(self, trainer, pl_module):
        self.rows.append({"event": "val_start", "t": time.perf_counter(), "rss": _rss_mib()})

    def on_validation_end(self, trainer, pl_module):
        self.rows.append({"event": "val_end", "t": time.perf_counter(), "rss": _rss_mib()})

    def on_fit_end(self, trainer, pl_module):
        with open(os.environ["STEP_TIMER_OUT"], "w") as f:
            for row in self.rows:
                f.write(json.dumps(row) + "\n")
