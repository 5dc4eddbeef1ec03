"""Using a trained model: ``attnlab-predict`` and ``attnlab.load`` agree with ``attnlab-eval``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlab
from attnlab.checkpoints import CHECKPOINT_KEY, CheckpointError
from attnlab.config_errors import ConfigError
from attnlab.evaluate import evaluate
from attnlab.train import train
from tests.conftest import TOY, compose_config, needs_multi30k


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> dict:
    """A toy model trained a few epochs (good but not perfect, so outputs vary) and the
    hypotheses ``attnlab-eval`` wrote for its test split."""
    root = tmp_path_factory.mktemp("toy_run")
    metrics = train(compose_config([*TOY, "trainer.max_epochs=6"], root / "train"))
    checkpoint = metrics["best_checkpoint"]
    evaluate(compose_config([f"ckpt_path={checkpoint}", "data.split=test"], root / "eval", "eval"))
    from attnlab.data.tasks import ToySequences

    task = ToySequences(operation="reverse", num_train=2000, num_eval=100, vocab=10)
    sources = [example.source for example in task.read("test")]
    hypotheses = (root / "eval" / "hypotheses" / "test.hyp.txt").read_text().splitlines()
    return {"checkpoint": checkpoint, "sources": sources, "hypotheses": hypotheses, "root": root}


def run_predict(*overrides: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attnlab.predict", *overrides],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def test_predict_reproduces_eval_hypotheses(toy_run):
    model = attnlab.load(toy_run["checkpoint"])
    assert model.predict(toy_run["sources"]) == toy_run["hypotheses"]
    # Not all perfect: the comparison above is between imperfect, varied outputs.
    assert sum(h != s for h, s in zip(toy_run["hypotheses"], toy_run["sources"], strict=True)) > 0


def test_stdin_and_file_modes_and_the_api_agree(toy_run, tmp_path):
    sources = toy_run["sources"][:40]
    text = "".join(s + "\n" for s in sources)
    (tmp_path / "input.txt").write_text(text)
    ckpt = f"ckpt_path={toy_run['checkpoint']}"

    piped = run_predict(ckpt, stdin=text)
    assert piped.returncode == 0, piped.stderr
    from_file = run_predict(ckpt, f"input={tmp_path / 'input.txt'}", f"output={tmp_path / 'out'}")
    assert from_file.returncode == 0, from_file.stderr
    line_by_line = run_predict(ckpt, "interactive=true", stdin=text)

    # stdout holds the outputs and nothing else (logs go to stderr)
    assert piped.stdout.splitlines() == toy_run["hypotheses"][:40]
    assert (tmp_path / "out").read_text() == piped.stdout
    assert line_by_line.stdout == piped.stdout
    assert attnlab.load(toy_run["checkpoint"]).predict(sources) == piped.stdout.splitlines()
    assert not list(Path.cwd().glob("predict.log"))


def test_a_decode_key_alone_changes_only_that_setting(toy_run):
    sources = toy_run["sources"][:20]
    model = attnlab.load(toy_run["checkpoint"])
    longer = run_predict(
        f"ckpt_path={toy_run['checkpoint']}", "+decode.min_len=12", stdin="\n".join(sources)
    )
    assert longer.returncode == 0, longer.stderr
    # still the checkpoint's greedy search, with only min_len changed
    assert longer.stdout.splitlines() == model.predict(sources, min_len=12)
    assert longer.stdout.splitlines() != model.predict(sources)
    no_ctc = run_predict(f"ckpt_path={toy_run['checkpoint']}", "+decode.ctc_weight=0.5", stdin="x")
    assert no_ctc.returncode != 0 and "decode.ctc_weight" in no_ctc.stderr


def test_nbest_beam_output_from_the_cli_matches_the_api(toy_run):
    sources = toy_run["sources"][:5]
    result = run_predict(
        f"ckpt_path={toy_run['checkpoint']}", "decode=beam", "nbest=3", stdin="\n".join(sources)
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [int(r[0]) for r in rows] == [i for i in range(5) for _ in range(3)]
    api = attnlab.load(toy_run["checkpoint"]).predict_nbest(
        sources, nbest=3, strategy="beam", beam_size=4, length_penalty=0.6
    )
    assert [r[2] for r in rows] == [p.text for best in api for p in best]
    for best in api:  # best first
        assert [p.score for p in best] == sorted((p.score for p in best), reverse=True)


def test_empty_lines_pass_through_in_order(toy_run):
    model = attnlab.load(toy_run["checkpoint"])
    a, b = toy_run["sources"][:2]
    assert model.predict([a, "", "   ", b]) == [*model.predict([a]), "", "", *model.predict([b])]
    result = run_predict(f"ckpt_path={toy_run['checkpoint']}", stdin=f"{a}\n\n{b}\n")
    assert result.stdout.splitlines() == [model.predict([a])[0], "", model.predict([b])[0]]


def test_attention_of_one_input(toy_run):
    model = attnlab.load(toy_run["checkpoint"])
    source = toy_run["sources"][0]
    maps = model.attention(source)
    heads = model.config.model.n_heads
    assert maps.hypothesis == model.predict([source])[0]
    assert maps.weights.shape == (heads, len(maps.queries), len(maps.keys))
    assert len(maps.keys) == len(source.split()) + 1  # source sub-words and EOS
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="no 'alignment' attention"):
        model.attention(source, kind="alignment")


def test_bad_decoding_settings_name_the_key(toy_run):
    model = attnlab.load(toy_run["checkpoint"])
    with pytest.raises(ConfigError, match="decode.nbest"):
        model.predict_nbest(["1 2 3"], nbest=3)  # greedy has no n-best
    with pytest.raises(ConfigError, match="decode.beam_size"):
        model.predict(["1 2 3"], strategy="beam", beam_size=0)
    result = run_predict(f"ckpt_path={toy_run['checkpoint']}", "nbest=2", stdin="1 2\n")
    assert result.returncode != 0 and "decode.nbest" in result.stderr


def test_checkpoints_from_another_format_or_truncated_are_refused(toy_run, tmp_path):
    checkpoint = torch.load(toy_run["checkpoint"], weights_only=True)
    checkpoint[CHECKPOINT_KEY]["format"] = 99
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="format 99 .*reads format 1"):
        attnlab.load(tmp_path / "future.ckpt")
    data = Path(toy_run["checkpoint"]).read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    result = run_predict(f"ckpt_path={tmp_path / 'cut.ckpt'}", stdin="1 2\n")
    assert result.returncode != 0 and "cut.ckpt" in result.stderr and "truncated" in result.stderr


@needs_multi30k
def test_a_moved_checkpoint_predicts_without_its_data_or_caches(tmp_path):
    overrides = [
        "model=transformer_tiny",
        "data.limit_train_examples=400",
        "data.limit_eval_examples=8",
        "data.tokenizer.vocab_size=400",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.max_time=null",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        "test=false",
    ]
    train(compose_config(overrides, tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    before = attnlab.load(last).predict(sentences)

    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.move(last, moved)
    shutil.rmtree(tmp_path / "run")
    shutil.rmtree(tmp_path / "cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNLAB_")}
    result = subprocess.run(
        [sys.executable, "-m", "attnlab.predict", f"ckpt_path={moved}"],
        input="\n".join(sentences),
        capture_output=True,
        text=True,
        env={**env, "ATTNLAB_DATA_DIR": str(tmp_path / "nowhere"), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == before
    assert not (tmp_path / "cache").exists() and not (tmp_path / "nowhere").exists()


def test_averaged_checkpoints_load_and_predict_like_any_other(toy_run, tmp_path):
    from attnlab.average import main as average_main

    run_dir = Path(toy_run["checkpoint"]).parent
    best, last = toy_run["checkpoint"], run_dir / "last.ckpt"
    average_main([str(best), str(last), "-o", str(tmp_path / "avg.ckpt")])
    averaged = torch.load(tmp_path / "avg.ckpt", weights_only=True)["state_dict"]
    a = torch.load(best, weights_only=True)["state_dict"]
    b = torch.load(last, weights_only=True)["state_dict"]
    for name, tensor in averaged.items():
        torch.testing.assert_close(tensor, (a[name].double() + b[name].double()).div(2).float())
    outputs = attnlab.load(tmp_path / "avg.ckpt").predict(toy_run["sources"][:20])
    assert len(outputs) == 20 and any(outputs)

    average_main([str(last), str(last), "-o", str(tmp_path / "same.ckpt")])
    same = attnlab.load(tmp_path / "same.ckpt").predict(toy_run["sources"])
    assert same == attnlab.load(last).predict(toy_run["sources"])

    with pytest.raises(SystemExit, match="0 step checkpoints, 5 wanted"):
        average_main([str(run_dir.parent), "--last", "5", "-o", str(tmp_path / "x.ckpt")])
