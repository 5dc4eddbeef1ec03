"""Named studies: the Table 3 rows, the sweeps that run them, W&B grouping, and the report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from attnlab.config import build, scaled
from attnlab.evaluate import evaluate
from attnlab.flops import training_flops, weights_per_token
from attnlab.report import TABLE3_ORDER, collect_runs, collect_wandb_runs, write_report
from tests.conftest import compose_config
from tests.wandb_records import OfflineApi, run_info

# The paper's Table 3 at its own scale: (N, d_model, d_ff, h, d_k, d_v, P_drop, eps_ls, positions)
PAPER_ROWS = {
    "base": (6, 512, 2048, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "A_h1": (6, 512, 2048, 1, 512, 512, 0.1, 0.1, "sinusoidal"),
    "A_h4": (6, 512, 2048, 4, 128, 128, 0.1, 0.1, "sinusoidal"),
    "A_h16": (6, 512, 2048, 16, 32, 32, 0.1, 0.1, "sinusoidal"),
    "A_h32": (6, 512, 2048, 32, 16, 16, 0.1, 0.1, "sinusoidal"),
    "B_dk16": (6, 512, 2048, 8, 16, 64, 0.1, 0.1, "sinusoidal"),
    "B_dk32": (6, 512, 2048, 8, 32, 64, 0.1, 0.1, "sinusoidal"),
    "C_n2": (2, 512, 2048, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "C_n4": (4, 512, 2048, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "C_n8": (8, 512, 2048, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "C_d256": (6, 256, 2048, 8, 32, 32, 0.1, 0.1, "sinusoidal"),
    "C_d1024": (6, 1024, 2048, 8, 128, 128, 0.1, 0.1, "sinusoidal"),
    "C_ff1024": (6, 512, 1024, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "C_ff4096": (6, 512, 4096, 8, 64, 64, 0.1, 0.1, "sinusoidal"),
    "D_drop0": (6, 512, 2048, 8, 64, 64, 0.0, 0.1, "sinusoidal"),
    "D_drop02": (6, 512, 2048, 8, 64, 64, 0.2, 0.1, "sinusoidal"),
    "D_ls0": (6, 512, 2048, 8, 64, 64, 0.1, 0.0, "sinusoidal"),
    "D_ls02": (6, 512, 2048, 8, 64, 64, 0.1, 0.2, "sinusoidal"),
    "E_learned": (6, 512, 2048, 8, 64, 64, 0.1, 0.1, "learned"),
    "big": (6, 1024, 4096, 16, 64, 64, 0.3, 0.1, "sinusoidal"),
}
DDP_EVAL_MAX_TOKENS = 150
PAPER_VOCAB = 37000  # the shared BPE vocabulary of the paper's WMT14 en-de models


def compose_row(row: str, scale: str):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
        return compose("train", overrides=[f"experiment=table3/{row}", f"table3_scale={scale}"])


def test_there_is_one_config_per_row_of_table3():
    folder = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "table3"
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(TABLE3_ORDER)
    sweep = OmegaConf.load(folder.parents[1] / "sweep" / "table3.yaml")
    listed = sweep.hydra.sweeper.params.experiment.split(",")
    assert listed == [f"table3/{row}" for row in TABLE3_ORDER]


@pytest.mark.parametrize("row", TABLE3_ORDER)
def test_paper_scale_rows_are_the_papers_models(row):
    cfg = compose_row(row, "paper")
    m = cfg.model
    d_k = m.d_k or m.d_model // m.n_heads
    d_v = m.d_v or m.d_model // m.n_heads
    got = (m.n_encoder_layers, m.d_model, m.d_ff, m.n_heads, d_k, d_v, m.dropout)
    assert (*got, cfg.criterion.label_smoothing, m.positional) == PAPER_ROWS[row]
    assert m.n_decoder_layers == m.n_encoder_layers
    # Parameter counts with the paper's vocabulary land near the paper's column.
    with torch.device("meta"):
        model = build(m, "model", src_vocab_size=PAPER_VOCAB, tgt_vocab_size=PAPER_VOCAB, pad_id=0)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    paper = cfg.table3.paper.params_m or 65
    assert millions == pytest.approx(paper, rel=0.08), f"{row}: {millions:.1f}M vs {paper}M"


@pytest.mark.parametrize("scale", ["small", "tiny"])
def test_scaled_rows_keep_their_ratio_to_the_base(scale):
    base = compose_row("base", scale).model
    for row in TABLE3_ORDER:
        m = compose_row(row, scale).model
        paper = PAPER_ROWS[row]
        assert m.n_encoder_layers / base.n_encoder_layers == paper[0] / 6
        assert m.d_model / base.d_model == paper[1] / 512
        assert m.d_ff / base.d_ff == paper[2] / 2048
        d_k = m.d_k or m.d_model // m.n_heads
        if row != "A_h1":  # one head stays one head at every scale
            assert m.n_heads / base.n_heads == paper[3] / 8
            assert d_k / (base.d_model // base.n_heads) == paper[4] / 64
        with torch.device("meta"):
            build(m, "model", src_vocab_size=100, tgt_vocab_size=100, pad_id=0)


def test_scaled_resolver_refuses_fractions():
    assert scaled(512, 1, 2) == 256 and scaled(6, 4, 3) == 8
    with pytest.raises(ValueError, match="not a whole number"):
        scaled(3, 1, 2)


def test_training_flops_follow_the_6nd_rule_for_the_transformer():
    cfg = compose_row("base", "paper")
    model = build(cfg.model, "model", src_vocab_size=1000, tgt_vocab_size=1000, pad_id=0)
    d, ff, n = 512, 2048, 6
    encoder = n * (4 * d * d + 2 * d * ff)
    decoder = n * (8 * d * d + 2 * d * ff) + d * 1000  # + the (tied) output projection
    assert weights_per_token(model) == (encoder, decoder)
    assert training_flops(10, 20, (encoder, decoder)) == 6 * (10 * encoder + 20 * decoder)


# ------------------------------------------------------------------------ end-to-end sweeps
def run_sweep(tmp_path: Path, *overrides: str) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnlab.train",
            "-m",
            *overrides,
            "data=toy",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.max_time=null",
            "trainer.enable_progress_bar=false",
            "callbacks.attention_maps=null",
            f"paths.log_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / overrides[0].split("=")[1]).glob("multiruns/*")
    return sweep_dir


def test_a_tiny_table3_sweep_runs_into_a_report_with_one_wandb_run_per_job(tmp_path):
    sweep_dir = run_sweep(
        tmp_path,
        "task_name=table3",
        "sweep=table3",
        "table3_scale=tiny",
        "experiment=table3/base,table3/A_h1",
        "seed=1,2",
    )
    jobs = sorted(p for p in sweep_dir.iterdir() if p.name.isdigit())
    assert len(jobs) == 4
    groups = set()
    for job in jobs:
        assert (job / "metrics.json").exists()
        (wandb_run,) = (job / "wandb").glob("offline-run-*")  # exactly one W&B run per job
        (log,) = wandb_run.glob("run-*.wandb")
        info = run_info(log)
        groups.add(info["group"])
        row = OmegaConf.load(job / "config_resolved.yaml").table3.row
        assert {"table3", f"table3_{row}"} <= set(info["tags"])
        assert info["job_type"] == "table3"
    assert groups == {f"table3-{sweep_dir.name}"}  # one group for the whole sweep

    report = write_report(sweep_dir)
    text = report.read_text()
    for row in ("base", "A_h1"):
        assert f"| {row} |" in text
    with (report.parent / "table3.csv").open() as handle:
        rows = {r["row"]: r for r in csv.DictReader(handle)}
    assert rows["A_h1"]["seeds"] == "2" and rows["A_h1"]["paper BLEU"] == "24.9"
    assert rows["A_h1"]["same direction"].startswith("BLEU ")
    assert "![Table 3 changes vs base](table3_changes.png)" in text
    assert (report.parent / "table3_changes.png").stat().st_size > 10_000

    # The same report from W&B alone, as `attnlab-report wandb:ENTITY/attnlab --group ...`
    # would read it once the offline runs are synced.
    api = OfflineApi(sweep_dir.glob("*/wandb/offline-run-*/run-*.wandb"))
    group = f"table3-{sweep_dir.name}"
    from_wandb = write_report("wandb:me/attnlab", tmp_path / "wandb_report", group=group, api=api)
    assert f"W&B project me/attnlab, group {group}" in from_wandb.read_text()
    csv_text = (report.parent / "table3.csv").read_text()
    assert (from_wandb.parent / "table3.csv").read_text() == csv_text

    def by_job(runs):
        return {(r.config["seed"], r.config["table3"]["row"]): r for r in runs}

    from_files, from_api = (
        by_job(collect_runs(sweep_dir)),
        by_job(collect_wandb_runs("attnlab", group, api)),
    )
    assert from_api.keys() == from_files.keys() and len(from_api) == 4
    for job, run in from_files.items():
        assert from_api[job].metrics == run.metrics
        assert from_api[job].curve == run.curve and run.curve
    assert collect_wandb_runs("attnlab", "another-sweep", api) == []


def test_a_tiny_rnn_vs_transformer_sweep_reports_every_family(tmp_path):
    sweep_dir = run_sweep(
        tmp_path,
        "task_name=rnn_vs_transformer",
        "sweep=rnn_vs_transformer",
        "seed=1",
        "logger=csv",
        "model.dropout=0.0",
    )
    report = write_report(sweep_dir, quality=0.0)
    with (report.parent / "models.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["model"] for r in rows) == ["BahdanauRNN", "LuongRNN", "Transformer"]
    for row in rows:
        assert float(row["train tok/s"]) > 0 and row["min to val BLEU 0.0"] != "not reached"
    assert (report.parent / "learning_curves.png").stat().st_size > 10_000
    metrics = json.loads(next(sweep_dir.glob("*/metrics.json")).read_text())
    assert len(metrics["weights_per_token"]) == 2


@pytest.mark.parametrize("study", ["table3", "rnn_vs_transformer"])
def test_wandb_sweep_files_name_configs_that_exist(study):
    import yaml

    spec = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "sweeps" / f"{study}.wandb.yaml").read_text()
    )
    assert spec["program"] == "attnlab-train" and "${args_no_hyphens}" in spec["command"]
    hydra_sweep = OmegaConf.load(
        Path(__file__).resolve().parents[1] / "conf" / "sweep" / f"{study}.yaml"
    )
    assert spec["parameters"]["experiment"][
        "values"
    ] == hydra_sweep.hydra.sweeper.params.experiment.split(",")
    for experiment in spec["parameters"]["experiment"]["values"]:
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="attnlab.conf", version_base="1.3"):
            compose("train", overrides=[f"experiment={experiment}", "seed=1", f"task_name={study}"])


def test_a_parallel_sweep_of_eight_jobs_runs_two_at_a_time_each_in_its_own_slot(tmp_path):
    sweep_dir = run_sweep(
        tmp_path,
        "task_name=load",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "experiment=toy",
        "seed=1,2,3,4,5,6,7,8",
        "logger=csv",
    )
    runs = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    assert len(runs) == 8 and sorted(r["seed"] for r in runs) == list(range(1, 9))
    threads = max(1, (os.cpu_count() or 1) // 2)
    for run in runs:  # without GPUs each job gets its share of the cores
        assert run["placement"]["device"] == "cpu" and run["placement"]["threads"] == threads
        assert run["placement"]["slot"] in (0, 1)
    overlapping = [
        (a, b)
        for i, a in enumerate(runs)
        for b in runs[i + 1 :]
        if a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    ]
    assert overlapping, "no two jobs ran at the same time"
    for a, b in overlapping:  # jobs running together never share a slot (a GPU on GPU machines)
        assert a["placement"]["slot"] != b["placement"]["slot"]
    for run in runs:  # never more than two at once
        during = [r for r in runs if r["started_at"] <= run["started_at"] < r["finished_at"]]
        assert len(during) <= 2
    assert "8 runs." in write_report(sweep_dir).read_text()


def test_slots_are_exclusive_while_held_and_free_again_when_released(tmp_path):
    from attnlab.devices import claim_slot

    first, lock_a = claim_slot(tmp_path, 2)
    second, lock_b = claim_slot(tmp_path, 2)
    assert {first, second} == {0, 1}
    lock_a.close()  # the job ended (or its process died)
    third, lock_c = claim_slot(tmp_path, 2, poll_seconds=0.01)
    assert third == first
    lock_b.close()
    lock_c.close()


def test_ddp_on_cpu_inside_a_multirun_gives_each_job_one_run_and_one_wandb_run(tmp_path):
    sweep_dir = run_sweep(
        tmp_path,
        "task_name=ddp",
        "experiment=toy",
        "trainer=ddp_cpu",
        "seed=1,2",
        "logger=default",
        # 5 test batches: the second rank repeats one, which must not be counted twice
        f"data.eval_max_tokens={DDP_EVAL_MAX_TOKENS}",
    )
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0", "1"]  # the ranks ran this job, not the whole sweep
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["world_size"] == 2 and metrics["test"]["test"]["ppl"] > 1.0
        # Two ranks score the test set exactly as one process does.
        single = evaluate(
            compose_config(
                [
                    f"ckpt_path={metrics['best_checkpoint']}",
                    "data.split=test",
                    f"data.eval_max_tokens={DDP_EVAL_MAX_TOKENS}",
                    "trainer.enable_progress_bar=false",
                ],
                job / "single_process_eval",
                config_name="eval",
            )
        )["test"]["test"]
        for name in ("loss", "ppl", "bleu"):
            assert metrics["test"]["test"][name] == pytest.approx(single[name], rel=1e-6), name
        (wandb_run,) = (job / "wandb").glob("offline-run-*")
        info = run_info(next(wandb_run.glob("run-*.wandb")))
        assert info["id"] == (job / "wandb_run_id").read_text().strip()
    assert list((tmp_path / "ddp").glob("multiruns/*")) == [sweep_dir]
    assert not (tmp_path / "ddp" / "runs").exists()
