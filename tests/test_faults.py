"""Faults during training are reported where they happened and lose nothing."""

from __future__ import annotations

import pytest
import torch

from attnlab.config_errors import ConfigError
from attnlab.losses import LabelSmoothedCrossEntropy
from attnlab.train import train


@pytest.fixture
def nan_on_fourth_training_batch(monkeypatch):
    original = LabelSmoothedCrossEntropy.forward
    seen = {"training_batches": 0}

    def poisoned(self, logits, target, *args, **kwargs):
        loss, nll = original(self, logits, target, *args, **kwargs)
        if self.training:
            seen["training_batches"] += 1
            if seen["training_batches"] == 4:
                return loss * float("nan"), nll
        return loss, nll

    monkeypatch.setattr(LabelSmoothedCrossEntropy, "forward", poisoned)


def test_a_nonfinite_loss_stops_the_run_and_keeps_the_last_good_state(
    make_cfg, tmp_path, nan_on_fourth_training_batch
):
    with pytest.raises(FloatingPointError, match=r"nan at step 3 \(epoch 0, batch 3, examples"):
        train(make_cfg("trainer.max_epochs=1", "callbacks.attention_maps=null"))
    saved = torch.load(tmp_path / "checkpoints" / "last_good.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


def test_a_nonfinite_loss_can_skip_its_batch_instead(
    make_cfg, tmp_path, nan_on_fourth_training_batch
):
    metrics = train(
        make_cfg(
            "trainer.max_epochs=1", "module.nonfinite_loss=skip", "callbacks.attention_maps=null"
        )
    )
    assert metrics["skipped_batches"] == 1
    clean = make_cfg(
        "trainer.max_epochs=1", "callbacks.attention_maps=null", output_dir=tmp_path / "clean"
    )
    # The skipped batch makes no update (no gradients reach the optimizer) but, as in
    # Lightning, still counts as a step of the schedule.
    assert metrics["global_step"] == train(clean)["global_step"]
    assert metrics["test"]["test"]["loss"] == metrics["test"]["test"]["loss"]  # not NaN


def test_an_unknown_nonfinite_policy_names_its_key(make_cfg):
    with pytest.raises(ConfigError, match="module.nonfinite_loss"):
        train(make_cfg("module.nonfinite_loss=ignore"))


def test_no_secret_reaches_the_run_directory(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    env["WANDB_API_KEY"] = "envsecret" + "0" * 31  # W&B keys are 40 characters
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "attnlab.train",
            "experiment=toy",
            "logger=default",
            "trainer.max_epochs=1",
            "trainer.max_time=null",
            "+service.api_key=cfgsecret97",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.suffix == ".ckpt" for p in files)
    for path in files:
        data = path.read_bytes()
        assert b"cfgsecret97" not in data, path
        assert b"envsecret" not in data, path
    assert "cfgsecret97" not in result.stdout + result.stderr


def test_a_broken_wandb_setup_never_stops_training(make_cfg, tmp_path, monkeypatch):
    import wandb

    def unreachable(*args, **kwargs):
        raise wandb.errors.CommError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "init", unreachable)
    metrics = train(make_cfg("trainer.max_epochs=1", "logger=default"))
    assert metrics["test"]["test"]["bleu"] >= 0
    assert (tmp_path / "metrics.json").exists()
    assert (tmp_path / "csv" / "metrics.csv").read_text().count("val/bleu") >= 1


def test_resuming_a_run_directory_with_another_model_names_what_changed(make_cfg, tmp_path):
    train(make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=2", "test=false"))
    (tmp_path / "metrics.json").unlink()  # as if the run had been killed before it finished
    with pytest.raises(ConfigError, match=r"resume.*model\.d_model: 64 -> 32"):
        train(make_cfg("trainer.max_epochs=1", "model.d_model=32", "test=false"))
