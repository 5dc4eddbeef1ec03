"""The README's RNN-vs-Transformer table rows from the runs' own files (metrics.json, the CSV
log, /usr/bin/time's log): python rvt_rows.py transformer luong"""
import csv, json, re, sys
D = "outputs/measured/2026-12-07_s25_zen3"
for family in sys.argv[1:]:
    run = f"outputs/train/runs/s25_rvt_{family}"
    m = json.load(open(f"{run}/metrics.json"))
    rows = list(csv.DictReader(open(f"{run}/csv/metrics.csv")))
    val = [float(r["val/bleu"]) for r in rows if r.get("val/bleu")]
    log = open(f"{D}/rvt_{family}.log").read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 2**20
    t = m["test"]
    print(f"{family}: params {m['params']:,} | greedy test_2016_flickr {t['test_2016_flickr']['bleu']:.2f} "
          f"| updates {m['global_step']:,} ({m['epochs']}) | {m['tokens_per_sec']:,.0f} tokens/s "
          f"| val BLEU by epoch {', '.join(f'{v:.1f}' for v in val)} | whole command {wall} "
          f"| test_2017_flickr {t['test_2017_flickr']['bleu']:.2f} / test_2017_mscoco {t['test_2017_mscoco']['bleu']:.2f} "
          f"| best {m['best_checkpoint'].rsplit('/', 1)[-1]} | max RSS {rss:.2f} GiB | commit {m['git_sha'][:7]} dirty {m['git_dirty']}")
