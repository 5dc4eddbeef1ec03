"""Summarization (DialogSum) through the same models, loop, decoder and logging."""

from __future__ import annotations

import gzip
import json

import pytest
from rouge_score import rouge_scorer

from attnlab.data.summarization import JsonlSummaries
from attnlab.data.tasks import DataFileError
from attnlab.metrics import summary_scores
from attnlab.train import train
from tests.conftest import SHARED_DATA

HAS_DIALOGSUM = (SHARED_DATA / "dialogsum" / "train.jsonl.gz").exists()
needs_dialogsum = pytest.mark.skipif(not HAS_DIALOGSUM, reason=f"DialogSum not under {SHARED_DATA}")


@needs_dialogsum
def test_dialogsum_reads_every_split_with_its_references():
    task = JsonlSummaries(
        "dialogsum",
        source_field="dialogue",
        target_fields=["summary", "summary1", "summary2", "summary3"],
        root=str(SHARED_DATA),
    )
    train_split, dev, test = task.read("train"), task.read("dev"), task.read("test")
    assert (len(train_split), len(dev), len(test)) == (12460, 500, 500)
    assert train_split[0].source.startswith("#Person1#") and "\n" not in train_split[0].source
    assert train_split[0].references == ()  # one summary
    assert len(test[0].references) == 3 and test[0].target == test[0].references[0]


def write_jsonl(path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b'{"dialogue": "#Person1#: hi", "summary": ', "malformed JSON record"),
        (b'{"dialogue": "#Person1#: hi"}', "no summary in fields"),
        (b'{"summary": "x"}', "no text in field 'dialogue'"),
        (b'{"dialogue": "\xff\xfe", "summary": "x"}', "invalid UTF-8"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path, line, words):
    folder = tmp_path / "corpus"
    folder.mkdir()
    good = json.dumps({"dialogue": "#Person1#: Hello.\n#Person2#: Hi.", "summary": "They greet."})
    write_jsonl(folder / "train.jsonl.gz", [good.encode(), line])
    task = JsonlSummaries("corpus", source_field="dialogue", root=str(tmp_path))
    with pytest.raises(DataFileError, match=f"train.jsonl.gz:2: {words}"):
        task.read("train")


def test_rouge_uses_stemming_and_takes_the_best_of_several_references():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    hyps = ["#Person1# is asking about the trains.", "They talk about cats."]
    refs = [
        ["#Person1# asks about trains.", "#Person2# tells #Person1# about the train times."],
        ["They are talking about dogs.", "They talked about cats."],
    ]
    scores = summary_scores(hyps, refs)
    expected = (
        sum(scorer.score(r[0], h)["rouge1"].fmeasure for h, r in zip(hyps, refs, strict=True)) / 2
    )
    assert scores["rouge1"] == pytest.approx(100 * expected)
    assert scores["rouge1_multi"] >= scores["rouge1"]
    assert summary_scores(["they talked"], [["They talk"]])["rouge1"] == pytest.approx(100.0)
    assert scores["score"] == scores["rougeL"]


@needs_dialogsum
@pytest.mark.parametrize(
    "model",
    [
        ["model=transformer_tiny", "model.max_positions=512"],
        ["model=transformer_tiny", "model.max_positions=512", "model.copy_attention=true"],
        ["model=rnn_luong", "model.embed_dim=32", "model.hidden_size=32"],
        ["model=rnn_bahdanau", "model.embed_dim=32", "model.hidden_size=32"],
    ],
    ids=["transformer", "transformer_copy", "luong", "bahdanau"],
)
def test_each_model_family_runs_dialogsum_end_to_end(make_cfg, model):
    cfg = make_cfg(
        "debug=fdr",
        *model,
        "data=dialogsum",
        "data.limit_train_examples=300",
        "data.limit_eval_examples=6",
        "data.tokenizer.vocab_size=500",
        "decode.max_len_b=12",
        "decode.min_len=2",
        base=["logger=csv", "trainer.enable_progress_bar=false", "trainer.max_time=null"],
    )
    assert cfg.decode.strategy == "beam" and cfg.decode.no_repeat_ngram_size == 3
    metrics = train(cfg)
    scores = metrics["test"]["test"]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "rouge1_multi", "rougeL_multi"):
        assert 0.0 <= scores[key] <= 100.0
    assert "bleu" not in scores
