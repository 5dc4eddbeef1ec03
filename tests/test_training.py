"""End-to-end behaviour of attnlab-train and attnlab-eval on the toy task (seconds on a CPU)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from attnlab.evaluate import evaluate
from attnlab.train import train
from tests.conftest import STOP_WHEN_LEARNT, compose_config, needs_multi30k
from tests.wandb_records import logged_metrics, record_counts


def test_fast_dev_run_trains_and_tests_the_toy_task(make_cfg):
    metrics = train(make_cfg("debug=fdr"))
    assert metrics["global_step"] == 1
    assert metrics["test"]["test"]["ppl"] > 1.0


def test_module_compile_trains_through_torch_compile(make_cfg):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    # aot_eager traces forward and backward as inductor would, without its C++ compile time;
    # fullgraph fails on any graph break (dropout on, so its CPU mask path is traced too).
    compile_options = "module.compile={backend: aot_eager, fullgraph: true}"
    metrics = train(make_cfg("debug=fdr", compile_options, "model.dropout=0.1", "test=false"))
    assert metrics["global_step"] == 1
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] >= 1 and counters["aot_autograd"]["ok"] >= 1
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "value", ["{mode: fast}", "{moed: max-autotune}", "yes", "{backend: nope}"]
)
def test_a_bad_module_compile_names_the_key(make_cfg, value):
    from attnlab.config_errors import ConfigError

    with pytest.raises(ConfigError, match="module.compile"):
        train(make_cfg("debug=fdr", f"module.compile={value}", "test=false"))


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
    metrics = train(make_cfg(*STOP_WHEN_LEARNT))
    assert metrics["test"]["test"]["exact_match"] >= 95.0


def test_a_run_that_stops_at_max_steps_before_validating_ends_cleanly(make_cfg, tmp_path):
    # The shipped early stopping (toy.yaml turns it off) must wait for a validation, not fail
    # at the end of a partial epoch that had none.
    cfg = make_cfg("trainer.max_steps=3", "trainer.max_epochs=null")
    shipped = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/callbacks/default.yaml")
    cfg.callbacks.early_stopping = shipped.early_stopping
    metrics = train(cfg)
    assert metrics["global_step"] == 3
    assert (tmp_path / "metrics.json").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_run_directory_holds_config_checkpoints_hypotheses_and_metrics(make_cfg, tmp_path):
    train(make_cfg("trainer.max_epochs=1"))
    resolved = (tmp_path / "config_resolved.yaml").read_text()
    assert "${" not in resolved
    assert OmegaConf.create(resolved).model.d_model == 64
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test", "params", "wall_time_s", "tokens_per_sec", "git_sha", "git_dirty", "seed"):
        assert key in metrics
    assert metrics["params"] > 0 and metrics["tokens_per_sec"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    hypotheses = (tmp_path / "hypotheses" / "test.hyp.txt").read_text().splitlines()
    assert len(hypotheses) == 100


def test_metrics_say_whether_the_code_differed_from_its_commit(tmp_path, tmp_path_factory):
    from attnlab.runs import git_dirty, git_sha

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("src/model.py", "conf/train.yaml", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    inside = tmp_path / "src"
    assert len(git_sha(inside)) == 40 and git_dirty(inside) is False
    (tmp_path / "notes.txt").write_text("outside src/ and conf/: still the commit's code\n")
    assert git_dirty(inside) is False
    (tmp_path / "conf" / "new.yaml").write_text("lr: 1\n")  # a new config counts
    assert git_dirty(inside) is True
    not_a_checkout = tmp_path_factory.mktemp("wheel_install")
    assert git_sha(not_a_checkout) is None and git_dirty(not_a_checkout) is None


def test_reported_bleu_equals_sacrebleu_on_the_hypothesis_file(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=2"))
    folder = tmp_path / "hypotheses"

    def sacrebleu_cli(metric: str) -> float:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sacrebleu",
                str(folder / "test.ref.txt"),
                "-i",
                str(folder / "test.hyp.txt"),
                "-b",
                "-w",
                "4",
                "-m",
                metric,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(result.stdout.strip())

    scores = metrics["test"]["test"]
    assert scores["bleu"] == pytest.approx(sacrebleu_cli("bleu"), abs=1e-4)
    assert scores["chrf"] == pytest.approx(sacrebleu_cli("chrf"), abs=1e-4)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


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


def test_native_kernels_false_trains_on_pytorch_ops_alone(make_cfg, monkeypatch):
    from attnlab import native

    class Refusing:
        def __getattr__(self, kernel):
            raise AssertionError(f"native kernel {kernel} ran with native_kernels=false")

    monkeypatch.setattr(native, "_library", Refusing())  # what every kernel call goes through
    monkeypatch.setattr(native, "_tried", True)
    try:
        metrics = train(make_cfg("native_kernels=false", "trainer.max_steps=6", "test=false"))
    finally:
        native.use_native_kernels(True)
    assert metrics["global_step"] == 6


@pytest.mark.parametrize("every, warned", [(1, False), (32, True)])
def test_averaging_most_of_a_short_run_is_warned_of(make_cfg, tmp_path, caplog, every, warned):
    # Step checkpoints every 32 of its ~100 updates: the newest 3 reach back into its first half.
    with caplog.at_level(logging.WARNING, logger="attnlab.train"):
        metrics = train(
            make_cfg(
                "trainer.max_epochs=2",
                "average_last=3",
                f"callbacks.step_checkpoint.every_n_train_steps={every}",
            )
        )
    first = int(Path(metrics["averaged_from"][0]).stem.removeprefix("step"))
    assert (first < metrics["global_step"] / 2) is warned
    assert ("most of this run" in caplog.text) is warned


def test_average_last_scores_the_mean_of_the_newest_step_checkpoints(make_cfg, tmp_path):
    import torch

    metrics = train(
        make_cfg(
            "trainer.max_epochs=2",
            "average_last=3",
            "callbacks.step_checkpoint.every_n_train_steps=4",
            output_dir=tmp_path / "train",
        )
    )
    checkpoints = tmp_path / "train" / "checkpoints"
    kept = sorted(checkpoints.glob("step*.ckpt"))
    assert len(kept) == 3  # only the newest three step checkpoints are kept
    assert metrics["averaged_from"] == [str(p) for p in kept]
    assert metrics["tested_checkpoint"] == str(checkpoints / "averaged.ckpt")
    averaged = torch.load(checkpoints / "averaged.ckpt", weights_only=True)["state_dict"]
    inputs = [torch.load(p, weights_only=True)["state_dict"] for p in kept]
    for name, tensor in averaged.items():
        if tensor.is_floating_point():
            mean = sum(w[name].double() for w in inputs) / 3
            torch.testing.assert_close(tensor, mean.to(tensor.dtype))
    assert not torch.equal(inputs[0][next(iter(averaged))], inputs[2][next(iter(averaged))])
    # The score in metrics.json is the averaged model's: attnlab-eval of it agrees.
    result = evaluate(
        compose_config(
            [f"ckpt_path={metrics['tested_checkpoint']}", "data.split=test"],
            tmp_path / "eval",
            config_name="eval",
        )
    )
    assert result["test"]["test"]["bleu"] == pytest.approx(
        metrics["test"]["test"]["bleu"], abs=1e-9
    )


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
    # One key alone changes only that setting of the decoder the model was trained with.
    trained = OmegaConf.load(tmp_path / "train" / "config_resolved.yaml").decode
    one_key = compose_config(
        [f"ckpt_path={metrics['best_checkpoint']}", "data.split=val", "+decode.max_len_b=3"],
        tmp_path / "eval_one_key",
        config_name="eval",
    )
    assert evaluate(one_key)["decode"] == {**OmegaConf.to_container(trained), "max_len_b": 3}


def test_resume_from_last_checkpoint_continues_the_epoch_count(make_cfg, tmp_path):
    first = train(make_cfg("trainer.max_epochs=2", output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(
        make_cfg("trainer.max_epochs=3", f"ckpt_path={last}", output_dir=tmp_path / "second")
    )
    assert first["epochs"] == 2
    assert resumed["epochs"] == 3
    assert resumed["global_step"] == first["global_step"] * 3 // 2


def test_wandb_runs_offline_and_its_log_holds_the_metrics(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    metrics = train(make_cfg("trainer.max_epochs=1", "logger=default"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (run_log,) = runs[0].glob("run-*.wandb")  # what `wandb sync` uploads
    logged = logged_metrics(run_log)
    # Names what the log does hold when a key is missing (a rare failure seen twice in CI).
    assert {"val/bleu", "test/test/bleu"} <= set(logged), (sorted(logged), record_counts(run_log))
    assert logged["val/bleu"][-1] == pytest.approx(metrics["val"]["bleu"], rel=1e-5)
    assert logged["test/test/bleu"] == [pytest.approx(metrics["test"]["test"]["bleu"], rel=1e-5)]
    assert "train/loss" in logged and "lr-Adam" in logged
    assert (tmp_path / "csv" / "metrics.csv").exists()


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_other_loggers_work(make_cfg, tmp_path, logger):
    train(make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=2", f"logger={logger}"))
    assert any(Path(tmp_path, logger).rglob("*"))


def test_attention_maps_are_drawn_each_epoch_and_by_eval(make_cfg, tmp_path):
    metrics = train(
        make_cfg(
            "trainer.max_epochs=1",
            "logger=default",
            "callbacks.attention_maps.num_sentences=2",
            output_dir=tmp_path / "train",
        )
    )
    pngs = sorted((tmp_path / "train" / "attention" / "epoch000").glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 1000 for p in pngs)
    media = list((tmp_path / "train" / "wandb").rglob("media/images/val/attention*"))
    assert media, "attention images were not logged to W&B"
    eval_cfg = compose_config(
        [
            f"ckpt_path={metrics['best_checkpoint']}",
            "data.split=test",
            "attention=true",
            "attention_sentences=[0,5]",
            "attention_kind=encoder_self",
        ],
        tmp_path / "eval",
        config_name="eval",
    )
    result = evaluate(eval_cfg)
    assert [Path(p).name for p in result["attention_maps"]] == [
        "encoder_self_layer-1_sent0000.png",
        "encoder_self_layer-1_sent0005.png",
    ]


def test_a_missing_checkpoint_is_a_config_error(make_cfg, tmp_path):
    from attnlab.config_errors import ConfigError

    with pytest.raises(ConfigError, match="ckpt_path"):
        train(make_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"))


def test_test_only_run_scores_the_given_checkpoint(make_cfg, tmp_path):
    trained = train(make_cfg("trainer.max_epochs=2", output_dir=tmp_path / "train"))
    tested = train(
        make_cfg(
            "train=false", f"ckpt_path={trained['best_checkpoint']}", output_dir=tmp_path / "test"
        )
    )
    assert tested["test"]["test"]["bleu"] == pytest.approx(trained["test"]["test"]["bleu"])
