"""Resident memory of two runs at the same minutes, from their W&B system records (the
session 25 45-minute Transformer run and this session's, same command):
    PYTHONPATH=. python rss_side_by_side.py outputs/train/runs/s25_rvt_transformer outputs/train/runs/s26_rvt_transformer_rounded"""
import glob
import sys
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

from tests.wandb_records import read_payloads


def rss_by_minute(run: str) -> list[tuple[float, float]]:
    path = glob.glob(f"{run}/wandb/offline-run-*/run-*.wandb")[0]
    rows = []
    for payload in read_payloads(Path(path)):
        r = pb.Record()
        r.ParseFromString(payload)
        if r.WhichOneof("record_type") == "stats":
            items = {i.key: i.value_json for i in r.stats.item}
            rss = [float(v) for k, v in items.items() if k.endswith("proc.memory.rssMB")]
            if rss:
                rows.append((r.stats.timestamp.seconds, rss[0]))
    t0 = rows[0][0]
    return [((t - t0) / 60, mb) for t, mb in rows]


runs = [rss_by_minute(r) for r in sys.argv[1:]]
print("minute  " + "  ".join(f"{Path(r).name:>28}" for r in sys.argv[1:]))
for minute in (2, 5, 9, 14, 18, 23, 27, 32, 36, 41, 45):
    cells = []
    for rows in runs:
        before = [mb for m, mb in rows if m <= minute]
        cells.append(f"{before[-1]:25.0f} MB" if before and rows[-1][0] >= minute - 0.5 else f"{'-':>28}")
    print(f"{minute:6d}  " + "  ".join(cells))
for name, rows in zip(sys.argv[1:], runs):
    m, mb = max(rows, key=lambda x: x[1])
    print(f"{Path(name).name}: peak {mb:.0f} MB at {m:.1f} min of {rows[-1][0]:.1f}")
