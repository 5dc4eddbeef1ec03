"""End-to-end behaviour of attnlab-train and attnlab-eval on the toy task (seconds on a CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from attnlab.evaluate import evaluate
from attnlab.train import train
from tests.conftest import compose_config, needs_multi30k


def test_fast_dev_run_trains_and_tests_the_toy_task(make_cfg):
    metrics = train(make_cfg("debug=fdr"))
    assert metrics["global_step"] == 1
    assert metrics["test"]["test"]["ppl"] > 1.0


@needs_multi30k
def test_fast_dev_run_on_multi30k(make_cfg):
    cfg = make_cfg(
        "debug=fdr",
        "model=transformer_tiny",
        "data.limit_train_examples=400",
        "data.limit_eval_examples=16",
        "data.tokenizer.vocab_size=400",
        "trainer.max_time=null",
        base=["logger=csv"],
    )
    metrics = train(cfg)
    assert metrics["global_step"] == 1
    assert set(metrics["test"]) == {"test_2016_flickr", "test_2017_flickr", "test_2017_mscoco"}


def test_tiny_transformer_learns_to_reverse_sequences(make_cfg):
    metrics = train(make_cfg())
    assert metrics["test"]["test"]["exact_match"] >= 95.0


def test_run_directory_holds_config_checkpoints_hypotheses_and_metrics(make_cfg, tmp_path):
    train(make_cfg("trainer.max_epochs=1"))
    resolved = (tmp_path / "config_resolved.yaml").read_text()
    assert "${" not in resolved
    assert OmegaConf.create(resolved).model.d_model == 64
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test", "params", "wall_time_s", "tokens_per_sec", "git_sha", "seed"):
        assert key in metrics
    assert metrics["params"] > 0 and metrics["tokens_per_sec"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    hypotheses = (tmp_path / "hypotheses" / "test.hyp.txt").read_text().splitlines()
    assert len(hypotheses) == 100


def test_reported_bleu_equals_sacrebleu_on_the_hypothesis_file(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=2"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(tmp_path / "hypotheses" / "test.ref.txt"),
            "-i",
            str(tmp_path / "hypotheses" / "test.hyp.txt"),
            "-b",
            "-m",
            "bleu",
            "chrf",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    bleu, chrf = (float(x) for x in result.stdout.split())
    assert metrics["test"]["test"]["bleu"] == pytest.approx(bleu, abs=0.01)
    assert metrics["test"]["test"]["chrf"] == pytest.approx(chrf, abs=0.01)
    assert metrics["test"]["test"]["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_train_then_eval_reproduces_the_test_metric(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=3", output_dir=tmp_path / "train"))
    eval_cfg = compose_config(
        [f"ckpt_path={metrics['best_checkpoint']}", "data.split=test"],
        tmp_path / "eval",
        config_name="eval",
    )
    result = evaluate(eval_cfg)
    assert result["test"]["test"]["bleu"] == pytest.approx(
        metrics["test"]["test"]["bleu"], abs=1e-9
    )
    assert result["test"]["test"]["loss"] == pytest.approx(
        metrics["test"]["test"]["loss"], rel=1e-5
    )
    trained = (tmp_path / "train" / "hypotheses" / "test.hyp.txt").read_text()
    assert (tmp_path / "eval" / "hypotheses" / "test.hyp.txt").read_text() == trained


def test_eval_with_beam_search_writes_metrics(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=2", output_dir=tmp_path / "train"))
    eval_cfg = compose_config(
        [f"ckpt_path={metrics['best_checkpoint']}", "data.split=val", "decode=beam"],
        tmp_path / "eval",
        config_name="eval",
    )
    result = evaluate(eval_cfg)
    assert result["decode"]["strategy"] == "beam" and result["decode"]["beam_size"] == 4
    assert 0.0 <= result["test"]["val"]["bleu"] <= 100.0


def test_resume_from_last_checkpoint_continues_the_epoch_count(make_cfg, tmp_path):
    first = train(make_cfg("trainer.max_epochs=2", output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        make_cfg("trainer.max_epochs=3", f"ckpt_path={last}", output_dir=tmp_path / "second")
    )
    assert first["epochs"] == 2
    assert resumed["epochs"] == 3
    assert resumed["global_step"] == first["global_step"] * 3 // 2


def test_wandb_runs_offline_and_leaves_a_syncable_run(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    train(make_cfg("trainer.max_epochs=1", "logger=default"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb")), "no .wandb log for `wandb sync` to upload"
    summary = json.loads((runs[0] / "files" / "wandb-summary.json").read_text())
    assert "val/bleu" in summary and "test/test/bleu" in summary
    assert (tmp_path / "csv" / "metrics.csv").exists()


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_other_loggers_work(make_cfg, tmp_path, logger):
    train(make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=2", f"logger={logger}"))
    assert any(Path(tmp_path, logger).rglob("*"))
