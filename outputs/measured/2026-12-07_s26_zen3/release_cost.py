"""Within one run (so the machine's drift between runs does not enter): what each release
costs. For every release point (updates 50, 100, ... and the validation), the seconds the next
8 update intervals took beyond the median interval of the 10 before the release, and the RSS
just before and after.   python release_cost.py steps_release50.jsonl [every_n]"""
import json
import statistics as st
import sys

rows = [json.loads(l) for l in open(sys.argv[1])]
every = int(sys.argv[2]) if len(sys.argv) > 2 else 50
batches = [r for r in rows if r["event"] == "batch"]
vals = [r for r in rows if r["event"].startswith("val")]
val_spans = [(a["t"], b["t"]) for a, b in zip(vals[::2], vals[1::2]) if b["t"] - a["t"] > 5]
starts = [b["start"] for b in batches]
gap = {}  # interval from the start of the batch that ended at update s to the next start
for i in range(len(batches) - 1):
    if not any(starts[i] < s < starts[i + 1] for s, _ in val_spans):
        gap[batches[i]["step"]] = starts[i + 1] - starts[i]
rss = {b["step"]: b["rss"] for b in batches}
points = [s for s in gap if every and s % every == 0 and s > 0]
excess_all = []
for p in points:
    before = [gap[s] for s in range(p - 10, p) if s in gap]
    after = [gap[s] for s in range(p, p + 8) if s in gap]
    if len(before) < 5 or len(after) < 8:
        continue
    excess = sum(a - st.median(before) for a in after)
    excess_all.append(excess)
    print(f"release after update {p}: next 8 intervals {sum(after):.2f} s, "
          f"{excess:+.2f} s over the median before ({st.median(before):.3f} s); "
          f"rss {rss[p - 1]:.0f} -> {rss.get(p + 1, float('nan')):.0f} MiB")
if excess_all:
    print(f"mean excess per release {st.mean(excess_all):+.2f} s")
