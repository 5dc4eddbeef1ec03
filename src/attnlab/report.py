"""``attnlab-report <sweep directory | wandb:ENTITY/PROJECT> [--out DIR]``: the tables and plots a
paper would print.

Reads every run under the directory (a ``metrics.json`` beside a ``config_resolved.yaml``), or
every finished attnlab run of a W&B project (``--group`` for one sweep; the config, summary and
validation history each run logged), and writes ``report.md`` with, where the runs allow:

- **Table 3**: per row, our validation perplexity and BLEU, test BLEU and parameters (mean ± std
  over seeds) beside the paper's dev-set numbers, and whether each row moves BLEU and
  perplexity the same way as in the paper, relative to the base row;
- **model families** (RNN vs Transformer): quality, parameters, training tokens/s, wall-clock,
  steps and the time each needed to reach a common validation BLEU, with learning curves
  against wall-clock, steps and training FLOPs (``learning_curves.png``).

Each table is also written as CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from attnlab.flops import training_flops
from attnlab.runs import WANDB_METRICS_KEY

WANDB_PREFIX = "wandb:"
TABLE3_ORDER = [
    "base", "A_h1", "A_h4", "A_h16", "A_h32", "B_dk16", "B_dk32", "C_n2", "C_n4", "C_n8",
    "C_d256", "C_d1024", "C_ff1024", "C_ff4096", "D_drop0", "D_drop02", "D_ls0", "D_ls02",
    "E_learned", "big",
]  # fmt: skip


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)  # one row per validation

    @property
    def family(self) -> str:
        return self.config["model"]["_target_"].rsplit(".", 1)[-1]

    @property
    def task(self) -> str:
        task = self.config["data"]["task"]
        name = task["_target_"].rsplit(".", 1)[-1]
        if "source_lang" in task:
            name += f" {task['source_lang']}->{task['target_lang']}"
        return name

    def val(self, key: str) -> float | None:
        return (self.metrics.get("val") or {}).get(key)

    def test(self, key: str, split: str | None = None) -> float | None:
        tests = self.metrics.get("test") or {}
        split = split or next(iter(tests), None)
        return (tests.get(split) or {}).get(key)


def collect_runs(root: Path) -> list[Run]:
    """Every finished training run under ``root``, in path order."""
    found = [
        Path(folder) / "metrics.json"
        for folder, _, files in os.walk(root, followlinks=True)  # runs may be linked in
        if "metrics.json" in files
    ]
    runs = []
    for metrics_path in sorted(found):
        config_path = metrics_path.parent / "config_resolved.yaml"
        if not config_path.exists():
            continue  # an attnlab-eval directory, not a training run
        config = OmegaConf.to_container(OmegaConf.load(config_path))
        metrics = json.loads(metrics_path.read_text())
        runs.append(Run(metrics_path.parent, config, metrics, read_curve(metrics_path.parent)))
    return runs


# A learning-curve point's fields and the metrics they are logged as (CSV columns, W&B history).
CURVE_SOURCES = {
    "wall_s": "progress/wall_s",
    "source_tokens": "progress/source_tokens",
    "target_tokens": "progress/target_tokens",
    "bleu": "val/bleu",
}


def curve_point(row: Mapping[str, Any], step_key: str) -> dict[str, float] | None:
    """One validation's point of a learning curve, or None for a row that is not one."""
    if any(row.get(key) in (None, "") for key in (step_key, *CURVE_SOURCES.values())):
        return None
    point = {"step": float(row[step_key])}
    point.update({name: float(row[key]) for name, key in CURVE_SOURCES.items()})
    return point


def read_curve(run_dir: Path) -> list[dict[str, float]]:
    """Validation scores with the wall-clock, steps and tokens it took to reach each."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        points = (curve_point(row, "step") for row in csv.DictReader(handle))
        return [point for point in points if point]


def collect_wandb_runs(project: str, group: str | None = None, api: Any = None) -> list[Run]:
    """Every finished attnlab training run of a W&B project (``ENTITY/PROJECT``).

    A run's config is the resolved config it logged, its metrics what it put in its summary
    under ``WANDB_METRICS_KEY`` when it finished, its curve its validation history. ``api`` is
    a ``wandb.Api`` (default: a new one, which needs ``wandb login``).
    """
    if api is None:
        import wandb

        api = wandb.Api()
    runs = []
    for remote in api.runs(project, filters={"group": group} if group else None):
        metrics = remote.summary.get(WANDB_METRICS_KEY)
        if remote.state != "finished" or not metrics:
            continue  # still running, crashed, or not an attnlab training run
        config = _plain(remote.config)
        config = {k: v for k, v in config.items() if k != "n_params" and not k.startswith("_")}
        keys = ["trainer/global_step", *CURVE_SOURCES.values()]
        points = (curve_point(row, "trainer/global_step") for row in remote.scan_history(keys=keys))
        curve = sorted((p for p in points if p), key=lambda p: p["step"])
        runs.append(Run(Path(*remote.path), config, _plain(metrics), curve))
    return sorted(runs, key=lambda run: str(run.path))


def _plain(value: Any) -> Any:
    """W&B's summary and config objects as plain dicts and lists."""
    if hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# ----------------------------------------------------------------------------------- helpers
def mean_std(values: Sequence[float | None]) -> tuple[float, float, int] | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread, len(values)


def fmt(stat: tuple[float, float, int] | None, digits: int = 2) -> str:
    if stat is None:
        return "–"
    mean, spread, n = stat
    return f"{mean:.{digits}f} ± {spread:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _sign(x: float | None) -> str:
    if x is None:
        return "?"
    return "+" if x > 0 else "-" if x < 0 else "0"


# ----------------------------------------------------------------------------------- Table 3
def table3(runs: list[Run]) -> tuple[list[str], list[list[Any]], dict[str, dict[str, float]]]:
    """The Table 3 rows found in ``runs``: header, rows, and each row's change vs base
    (``{row: {"bleu": ours, "paper_bleu": ..., "ppl": ..., "paper_ppl": ...}}``)."""
    by_row: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if "table3" in run.config:
            by_row[run.config["table3"]["id"]].append(run)
    if not by_row:
        return [], [], {}
    base = by_row.get("base", [])
    base_ppl = mean_std([r.val("ppl") for r in base])
    base_bleu = mean_std([r.val("bleu") for r in base])
    header = [
        "row", "change", "seeds", "params (M)", "val PPL", "val BLEU", "test BLEU",
        "paper PPL", "paper BLEU", "paper params (M)", "ΔBLEU ours / paper", "ΔPPL ours / paper",
        "same direction",
    ]  # fmt: skip
    rows, changes = [], {}
    order = sorted(by_row, key=lambda i: TABLE3_ORDER.index(i) if i in TABLE3_ORDER else 99)
    for row_id in order:
        group = by_row[row_id]
        info = group[0].config["table3"]
        paper = info.get("paper") or {}
        ppl = mean_std([r.val("ppl") for r in group])
        bleu = mean_std([r.val("bleu") for r in group])
        test = mean_std([r.test("bleu") for r in group])
        params = mean_std([r.metrics.get("params", 0) / 1e6 for r in group])
        agrees = ""
        deltas = ["", ""]
        if row_id != "base" and base_ppl and base_bleu and ppl and bleu:
            ours_bleu, ours_ppl = bleu[0] - base_bleu[0], ppl[0] - base_ppl[0]
            paper_bleu, paper_ppl = paper["bleu"] - 25.8, paper["ppl"] - 4.92
            changes[row_id] = {
                "bleu": ours_bleu,
                "paper_bleu": paper_bleu,
                "ppl": ours_ppl,
                "paper_ppl": paper_ppl,
            }
            deltas = [
                f"{ours_bleu:+.2f} / {paper_bleu:+.1f}",
                f"{ours_ppl:+.2f} / {paper_ppl:+.2f}",
            ]
            bleu_same = _sign(round(ours_bleu, 2)) == _sign(round(paper_bleu, 1))
            ppl_same = _sign(round(ours_ppl, 2)) == _sign(round(paper_ppl, 2))
            agrees = f"BLEU {'yes' if bleu_same else 'no'}, PPL {'yes' if ppl_same else 'no'}"
        rows.append(
            [
                row_id,
                info.get("change", ""),
                len(group),
                fmt(params, 1),
                fmt(ppl),
                fmt(bleu),
                fmt(test),
                paper.get("ppl", "–"),
                paper.get("bleu", "–"),
                paper.get("params_m") or "–",
                *deltas,
                agrees,
            ]
        )
    return header, rows, changes


def _pyplot() -> Any:
    """matplotlib.pyplot drawing to files (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_table3_changes(changes: dict[str, dict[str, float]], path: Path) -> Path | None:
    """Bars: each row's change in validation BLEU and perplexity vs base, ours beside the paper's."""
    if not changes:
        return None
    plt = _pyplot()
    rows = list(changes)
    x = range(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(rows) + 4), 4.2))
    for axis, metric, label in ((axes[0], "bleu", "Δ BLEU"), (axes[1], "ppl", "Δ PPL")):
        axis.bar([i - 0.2 for i in x], [changes[r][metric] for r in rows], 0.4, label="ours")
        axis.bar([i + 0.2 for i in x], [changes[r][f"paper_{metric}"] for r in rows], 0.4,
                 label="paper")  # fmt: skip
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xticks(list(x), rows, rotation=45, ha="right")
        axis.set_ylabel(f"{label} vs base")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- model families
def families(runs: list[Run], quality: float | None) -> tuple[list[str], list[list[Any]], float]:
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.family)].append(run)
    if quality is None:  # a level every family reached: 90% of the weakest family's best
        bests = [
            statistics.fmean(max((p["bleu"] for p in r.curve), default=0.0) for r in group)
            for group in groups.values()
            if all(r.curve for r in group)
        ]
        quality = round(0.9 * min(bests), 1) if bests else 0.0
    header = [
        "task", "model", "seeds", "params (M)", "test BLEU", "val BLEU", "train tok/s",
        "steps", "train time (min)", f"min to val BLEU {quality}",
    ]  # fmt: skip
    rows = []
    for (task, family), group in sorted(groups.items()):
        reach = []
        for run in group:
            hit = next((p["wall_s"] for p in run.curve if p["bleu"] >= quality), None)
            reach.append(hit / 60 if hit is not None else None)
        rows.append(
            [
                task,
                family,
                len(group),
                fmt(mean_std([r.metrics.get("params", 0) / 1e6 for r in group]), 1),
                fmt(mean_std([r.test("bleu") for r in group])),
                fmt(mean_std([r.val("bleu") for r in group])),
                fmt(mean_std([r.metrics.get("tokens_per_sec") for r in group]), 0),
                fmt(mean_std([r.metrics.get("global_step") for r in group]), 0),
                fmt(mean_std([r.metrics.get("train_time_s", 0) / 60 for r in group]), 1),
                _reach_cell(group, reach),
            ]
        )
    return header, rows, quality


def _reach_cell(group: list[Run], minutes: list[float | None]) -> str:
    if not any(run.curve for run in group):
        return "–"  # trained before attnlab logged progress/* with each validation
    if all(m is None for m in minutes):
        return "not reached"
    return fmt(mean_std(minutes), 1)


def plot_learning_curves(runs: list[Run], path: Path) -> Path | None:
    plt = _pyplot()
    runs = [r for r in runs if r.curve]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    colours: dict[str, Any] = {}
    for run in runs:
        label = f"{run.family} ({run.task})"
        colour = colours.setdefault(label, f"C{len(colours)}")
        per_token = run.metrics.get("weights_per_token")
        xs = {
            "wall-clock (min)": [p["wall_s"] / 60 for p in run.curve],
            "training steps": [p["step"] for p in run.curve],
            "training FLOPs": [
                training_flops(p["source_tokens"], p["target_tokens"], per_token)
                if per_token
                else math.nan
                for p in run.curve
            ],
        }
        ys = [p["bleu"] for p in run.curve]
        for axis, (name, x) in zip(axes, xs.items(), strict=True):
            first = label not in {line.get_label() for line in axis.get_lines()}
            axis.plot(x, ys, marker=".", color=colour, label=label if first else "_")
            axis.set_xlabel(name)
    axes[2].set_xscale("log")
    axes[0].set_ylabel("validation BLEU")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------- report
def write_report(
    source: Path | str,
    out: Path | None = None,
    quality: float | None = None,
    group: str | None = None,
    api: Any = None,
) -> Path:
    """Write ``report.md`` (and CSVs, plots) for the runs under a directory or in a W&B project.

    ``source`` is a directory, or ``wandb:ENTITY/PROJECT`` (``group`` narrows it to one sweep;
    ``api`` stands in for ``wandb.Api()``). ``out`` defaults to ``<directory>/report``, or to
    ``report-<project>[-<group>]`` in the working directory for W&B.
    """
    if str(source).startswith(WANDB_PREFIX):
        project = str(source)[len(WANDB_PREFIX) :]
        runs = collect_wandb_runs(project, group, api)
        where = f"W&B project {project}" + (f", group {group}" if group else "")
        default_out = Path("-".join(["report", project.replace("/", "_"), *filter(None, [group])]))
    else:
        runs = collect_runs(Path(source))
        where, default_out = str(source), Path(source) / "report"
    if not runs:
        raise SystemExit(f"attnlab-report: no finished training runs in {where}")
    out = out or default_out
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"# attnlab report: {where}", "", f"{len(runs)} runs."]

    header, rows, changes = table3(runs)
    if rows:
        write_csv(out / "table3.csv", header, rows)
        sections += [
            "",
            "## Table 3 (Vaswani et al. 2017) variations",
            "",
            "Ours: validation set of this run's data, final epoch; PPL per sub-word. Paper: "
            "newstest2013, 100K steps on WMT14 en-de. Δ is relative to the base row.",
            "",
            markdown_table(header, rows),
        ]
        plot = plot_table3_changes(changes, out / "table3_changes.png")
        if plot:
            sections += ["", f"![Table 3 changes vs base]({plot.name})"]

    compared = [r for r in runs if "table3" not in r.config]
    if compared:
        header, rows, _ = families(compared, quality)
        write_csv(out / "models.csv", header, rows)
        sections += ["", "## Models", "", markdown_table(header, rows)]
        plot = plot_learning_curves(compared, out / "learning_curves.png")
        if plot:
            sections += ["", f"![learning curves]({plot.name})"]
    path = out / "report.md"
    path.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="attnlab-report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "source", help="a multirun directory (or any folder of runs), or wandb:ENTITY/PROJECT"
    )
    parser.add_argument("--group", default=None, help="W&B: only this group (one sweep)")
    parser.add_argument("--out", type=Path, default=None, help="default: <directory>/report")
    parser.add_argument(
        "--quality", type=float, default=None, help="validation BLEU for the time-to-quality column"
    )
    args = parser.parse_args(argv)
    if not args.source.startswith(WANDB_PREFIX) and not Path(args.source).is_dir():
        raise SystemExit(
            f"attnlab-report: {args.source} is not a directory (a W&B project is "
            f"{WANDB_PREFIX}ENTITY/PROJECT)"
        )
    print(write_report(args.source, args.out, args.quality, args.group))


if __name__ == "__main__":
    main()
