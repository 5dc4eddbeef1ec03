"""Read an offline W&B run log (``run-*.wandb``) back, as ``wandb sync`` would upload it.

The file is W&B's LevelDB-style record log: a 7-byte header (``:W&B``, magic, version), then
32 KiB blocks of chunks, each ``crc32 (4) | length (2) | type (1)`` and a payload; FULL, or
FIRST + MIDDLE* + LAST chunks make one serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from collections import Counter
from pathlib import Path

BLOCK_SIZE = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_payloads(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    if len(data) < HEADER.size:  # created, nothing written yet
        return []
    ident, _magic, _version = HEADER.unpack_from(data, 0)
    assert ident == b":W&B", f"{path} is not a W&B run log"
    offset, payloads, pending = HEADER.size, [], b""
    while offset + CHUNK.size <= len(data):
        room = BLOCK_SIZE - offset % BLOCK_SIZE
        if room < CHUNK.size:  # block trailer: too small for a chunk header
            offset += room
            continue
        _crc, length, kind = CHUNK.unpack_from(data, offset)
        if kind == 0 and length == 0:  # zero padding: the writer went on in the next block
            offset += room
            continue
        body = data[offset + CHUNK.size : offset + CHUNK.size + length]
        offset += CHUNK.size + length
        if kind == FULL:
            payloads.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            payloads.append(pending + body)
    return payloads


def records(path: Path, wait_s: float = 30.0) -> list[tuple[str, object]]:
    """The run log's records, in order, as ``(record type, record)``, once the log is complete.

    wandb-core writes the log from its own process and can still be flushing it after the run's
    ``finish()`` has returned: CI twice read a log with no history values (once an empty one)
    whose records were all there a moment later. So the log is read again until it holds the
    run's ``exit`` record, for up to ``wait_s`` seconds (then what is there is returned).
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + wait_s
    while True:
        parsed = []
        try:
            for payload in read_payloads(path):
                record = pb.Record()
                record.ParseFromString(payload)
                parsed.append((record.WhichOneof("record_type"), record))
        except DecodeError:  # a record cut short by the writer
            parsed = []
        if any(kind == "exit" for kind, _ in parsed) or time.monotonic() > deadline:
            return parsed
        time.sleep(0.2)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def record_counts(path: Path) -> Counter[str]:
    """How many records of each type the log holds (for failure messages)."""
    return Counter(kind for kind, _record in records(path))


def logged_metrics(path: Path) -> dict[str, list[float]]:
    """Every history value by key, in the order it was logged."""
    history: dict[str, list[float]] = {}
    for kind, record in records(path):
        if kind != "history":
            continue
        for item in record.history.item:
            value = json.loads(item.value_json)
            if isinstance(value, int | float):
                history.setdefault(_key(item), []).append(value)
    return history


def run_info(path: Path) -> dict[str, object]:
    """The run's identity as W&B will show it: id, group, job type and tags."""
    for kind, record in records(path):
        if kind == "run":
            run = record.run
            return {
                "id": run.run_id,
                "group": run.run_group,
                "job_type": run.job_type,
                "tags": list(run.tags),
            }
    raise AssertionError(f"{path} holds no run record")


class OfflineRun:
    """A run as W&B's public API (``wandb.Api().runs(...)``) shows it once this offline run log
    is synced: config, summary, history, state."""

    def __init__(self, path: Path):
        self.config: dict[str, object] = {}
        self.summary: dict[str, object] = {}
        self.history: list[dict[str, object]] = []
        self.state = "running"
        for kind, record in records(path):
            if kind == "run":
                self.path = [record.run.entity or "offline", record.run.project, record.run.run_id]
                self.group = record.run.run_group
            elif kind == "config":
                self.config.update(
                    {_key(i): json.loads(i.value_json) for i in record.config.update}
                )
            elif kind == "summary":
                self.summary.update(
                    {_key(i): json.loads(i.value_json) for i in record.summary.update}
                )
            elif kind == "history":
                self.history.append(
                    {_key(i): json.loads(i.value_json) for i in record.history.item}
                )
            elif kind == "exit":
                self.state = "finished" if record.exit.exit_code == 0 else "failed"

    def scan_history(self, keys: list[str] | None = None) -> list[dict[str, object]]:
        return [row for row in self.history if not keys or all(k in row for k in keys)]


class OfflineApi:
    """Stands in for ``wandb.Api()`` over offline run logs (no account, no network)."""

    def __init__(self, run_logs):
        self._runs = [OfflineRun(Path(p)) for p in run_logs]

    def runs(self, path: str, filters: dict | None = None) -> list[OfflineRun]:
        project = path.split("/")[-1]
        group = (filters or {}).get("group")
        return [r for r in self._runs if r.path[1] == project and group in (None, r.group)]
