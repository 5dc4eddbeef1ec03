"""The 45-minute run's row (metrics.json, the CSV log, /usr/bin/time's log) and its resident
memory by update (step_timer.py): python rvt_row.py"""
import csv, json, re
D = "outputs/measured/2026-12-07_s26_zen3"
run = "outputs/train/runs/s26_rvt_transformer_rounded"
m = json.load(open(f"{run}/metrics.json"))
rows = list(csv.DictReader(open(f"{run}/csv/metrics.csv")))
val = [float(r["val/bleu"]) for r in rows if r.get("val/bleu")]
log = open(f"{D}/rvt_transformer_rounded.log").read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log).group(1)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 2**20
t = m["test"]
print(f"transformer: params {m['params']:,} | greedy test_2016_flickr {t['test_2016_flickr']['bleu']:.2f} "
      f"| updates {m['global_step']:,} ({m['epochs']}) | {m['tokens_per_sec']:,.0f} tokens/s "
      f"| val BLEU by epoch {', '.join(f'{v:.1f}' for v in val)} | whole command {wall} "
      f"| test_2017_flickr {t['test_2017_flickr']['bleu']:.2f} / test_2017_mscoco {t['test_2017_mscoco']['bleu']:.2f} "
      f"| best {m['best_checkpoint'].rsplit('/', 1)[-1]} | max RSS {rss:.2f} GiB | commit {m['git_sha'][:7]} dirty {m['git_dirty']}")
steps = [json.loads(l) for l in open(f"{D}/steps_rvt_transformer_rounded.jsonl")]
by_step = {r["step"]: r["rss"] for r in steps if r["event"] == "batch"}
print("RSS (MiB) at update: " + ", ".join(f"{s}: {by_step[s]:.0f}" for s in (50, 200, 500, 1000, 1500, 2000, max(by_step)) if s in by_step))
