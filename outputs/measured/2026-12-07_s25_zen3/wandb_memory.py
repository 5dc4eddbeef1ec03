"""The process memory W&B's system monitor recorded over an offline run (``run-*.wandb``),
read with the tests' record reader: does the run's RSS grow over time, and when does it peak?
    python wandb_memory.py outputs/train/runs/<run>"""
import glob, sys
from pathlib import Path
from wandb.proto import wandb_internal_pb2 as pb
from tests.wandb_records import read_payloads
path = glob.glob(f"{sys.argv[1]}/wandb/offline-run-*/run-*.wandb")[0]
rows = []
for payload in read_payloads(Path(path)):
    r = pb.Record(); r.ParseFromString(payload)
    if r.WhichOneof("record_type") == "stats":
        items = {i.key: i.value_json for i in r.stats.item}
        rss = [float(v) for k, v in items.items() if k.endswith("proc.memory.rssMB")]
        if rss:
            rows.append((r.stats.timestamp.seconds, rss[0]))
t0 = rows[0][0]
step = max(1, len(rows) // int(sys.argv[2] if len(sys.argv) > 2 else 24))
for ts, mb in rows[::step]:
    print(f"{(ts - t0) / 60:6.1f} min  rss {mb:8.0f} MB")
ts, mb = max(rows, key=lambda x: x[1])
print(f"peak {mb:.0f} MB at {(ts - t0) / 60:.1f} min of {(rows[-1][0] - t0) / 60:.1f}; {len(rows)} samples")
