"""Reads probe2's steps_<variant>.jsonl (step_timer.py) and prints, per variant: the wall-clock
seconds per update (batch start to next batch start, so callbacks and data loading count),
median and mean, before and after the first validation; the busy (forward/backward/update)
median; the validation's duration; resident memory at chosen updates and its peak at batch
ends.   python steps_table.py steps_keep.jsonl steps_nokeep.jsonl ..."""
import json
import statistics as st
import sys

print(f"{'variant':12} {'s/upd med':>9} {'mean':>6} {'mean20-189':>10} {'mean190+':>9} {'busy med':>8} "
      f"{'tok/s':>6} {'val s':>6} " + " ".join(f"rss@{s:<4}" for s in (20, 50, 100, 150, 185, 200, 255)) + "  peak")
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path)]
    batches = [r for r in rows if r["event"] == "batch"]
    vals = [r for r in rows if r["event"].startswith("val")]
    starts = [b["start"] for b in batches]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # a gap spanning a validation is not a step's cost
    val_spans = [(a["t"], b["t"]) for a, b in zip(vals[::2], vals[1::2])]
    step_gaps = [(batches[i]["step"], g) for i, g in enumerate(gaps)
                 if not any(starts[i] < s < starts[i + 1] for s, _ in val_spans)]
    early = [g for s, g in step_gaps if 20 <= s < 189]
    late = [g for s, g in step_gaps if s >= 190]
    allg = [g for s, g in step_gaps if s >= 20]
    busy = [b["busy"] for b in batches if b["step"] >= 20]
    toks = sum(b["tokens"] for b in batches if b["step"] >= 20) / sum(busy)
    rss = {b["step"]: b["rss"] for b in batches}
    val_s = [b - a for a, b in val_spans if b - a > 5]  # the sanity check is ~1 batch
    name = path.split("steps_")[-1].removesuffix(".jsonl")
    print(f"{name:12} {st.median(allg):9.3f} {st.mean(allg):6.3f} {st.mean(early):10.3f} "
          f"{st.mean(late) if late else float('nan'):9.3f} {st.median(busy):8.3f} {toks:6.0f} "
          f"{(val_s[0] if val_s else float('nan')):6.1f} "
          + " ".join(f"{rss.get(s, float('nan')):8.0f}" for s in (20, 50, 100, 150, 185, 200, 255))
          + f"  {max(rss.values()):.0f}")
    bigs = sorted(step_gaps, key=lambda x: -x[1])[:4]
    print(f"{'':12} longest step intervals: " + ", ".join(f"step {s}: {g:.2f} s" for s, g in bigs))
