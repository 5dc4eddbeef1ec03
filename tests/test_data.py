"""Data: the right files, aligned, checksummed; clear errors naming file and line; caches."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from attnlab.config_errors import ConfigError
from attnlab.data.datamodule import Seq2SeqDataModule
from attnlab.data.files import RemoteFile, ensure_files, resolve_data_root
from attnlab.data.tasks import DataFileError, Multi30k, ParallelText, ToySequences
from attnlab.data.tokenizer import SentencePieceTokenizer, WordTokenizer
from tests.conftest import SHARED_DATA, needs_multi30k


@needs_multi30k
def test_multi30k_reads_aligned_splits_in_either_direction():
    de_en = Multi30k("de", "en", root=str(SHARED_DATA), download=False)
    en_de = Multi30k("en", "de", root=str(SHARED_DATA), download=False)
    val = de_en.read("val")
    assert len(val) == 1014 and len(de_en.read("test_2017_mscoco")) == 461
    assert en_de.read("val")[0].source == val[0].target


def test_missing_files_error_names_each_file_and_where_to_put_it(tmp_path):
    task = Multi30k(root=str(tmp_path), download=False)
    with pytest.raises(FileNotFoundError) as error:
        task.read("val")
    assert "val.de.gz" in str(error.value)
    assert str(tmp_path / "multi30k_en_de") in str(error.value)
    assert "ATTNLAB_DATA_DIR" in str(error.value)


def test_failed_download_reports_the_missing_file(tmp_path):
    files = {"x.gz": RemoteFile((tmp_path / "nowhere" / "x.gz").as_uri(), "0" * 64)}
    with pytest.raises(FileNotFoundError, match="x.gz"):
        ensure_files(tmp_path / "data", files)


def test_download_is_checksummed_then_renamed_into_place(tmp_path):
    source = tmp_path / "remote.gz"
    source.write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    with pytest.raises(ValueError, match="sha256"):
        ensure_files(tmp_path / "a", {"f.gz": RemoteFile(source.as_uri(), "f" * 64)})
    assert not (tmp_path / "a" / "f.gz").exists()
    ensure_files(tmp_path / "b", {"f.gz": RemoteFile(source.as_uri(), good)})
    assert (tmp_path / "b" / "f.gz").read_bytes() == b"payload"


def _write(path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


def test_parallel_files_of_different_lengths_name_both_files(tmp_path):
    _write(tmp_path / "train.de.gz", [b"a", b"b", b"c"])
    _write(tmp_path / "train.en.gz", [b"a", b"b"])
    task = ParallelText(tmp_path.name, "de", "en", root=str(tmp_path.parent))
    with pytest.raises(DataFileError, match=r"train\.de\.gz has 3 lines but .*train\.en\.gz has 2"):
        task.read("train")


def test_invalid_utf8_names_file_and_line(tmp_path):
    _write(tmp_path / "train.de.gz", [b"gut", b"schlecht \xff"])
    _write(tmp_path / "train.en.gz", [b"good", b"bad"])
    task = ParallelText(tmp_path.name, "de", "en", root=str(tmp_path.parent))
    with pytest.raises(DataFileError, match=r"train\.de\.gz:2: invalid UTF-8"):
        task.read("train")


def test_empty_line_names_file_and_line(tmp_path):
    _write(tmp_path / "train.de.gz", [b"eins", b"zwei", b""])
    _write(tmp_path / "train.en.gz", [b"one", b"two", b"three"])
    task = ParallelText(tmp_path.name, "de", "en", root=str(tmp_path.parent))
    with pytest.raises(DataFileError, match=r"train\.de\.gz:3: empty line"):
        task.read("train")


def test_data_root_resolves_config_then_environment_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("ATTNLAB_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root(None) == tmp_path / "xdg" / "attnlab" / "data"


def test_sentencepiece_model_is_trained_once_per_texts_and_settings(tmp_path):
    texts = [f"ein kleiner satz nummer {i} mit worten" for i in range(300)]
    first = SentencePieceTokenizer.train_or_load(texts, tmp_path, vocab_size=40)
    again = SentencePieceTokenizer.train_or_load(texts, tmp_path, vocab_size=40)
    assert first.to_bytes() == again.to_bytes()
    assert len(list(tmp_path.glob("spm-*.model"))) == 1
    SentencePieceTokenizer.train_or_load(texts, tmp_path, vocab_size=50)
    assert len(list(tmp_path.glob("spm-*.model"))) == 2
    assert first.decode(first.encode("ein kleiner satz")) == "ein kleiner satz"


def test_corrupt_tokenised_cache_is_rebuilt_not_read(tmp_path):
    def datamodule():
        return Seq2SeqDataModule(
            ToySequences(num_train=50, num_eval=10),
            {"kind": "word"},
            max_tokens=256,
            test_splits=["test"],
            cache_dir=str(tmp_path),
        )

    expected = datamodule().split_data("val").sources
    (cache,) = tmp_path.glob("tokens-*-val-*.npz")
    cache.write_bytes(cache.read_bytes()[:40])  # a write interrupted half-way
    rebuilt = datamodule().split_data("val").sources
    assert [s.tolist() for s in rebuilt] == [s.tolist() for s in expected]


@pytest.mark.parametrize(("stage", "splits"), [("fit", {"train", "val"}), ("test", {"test"})])
def test_prepare_data_caches_what_the_stage_needs_and_other_ranks_only_read_it(
    tmp_path, monkeypatch, stage, splits
):
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    def datamodule():
        dm = Seq2SeqDataModule(
            ToySequences(num_train=50, num_eval=10),
            {"kind": "word"},
            max_tokens=256,
            test_splits=["test"],
            cache_dir=str(tmp_path),
        )
        dm.trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn(stage)))
        return dm

    datamodule().prepare_data()  # on one process per node, before the others start `setup`
    assert {p.name.split("-")[2] for p in tmp_path.glob("tokens-*.npz")} == splits

    def must_not_encode(self, texts):
        raise AssertionError("another rank tokenised data that prepare_data had cached")

    monkeypatch.setattr(WordTokenizer, "encode_batch", must_not_encode)
    other_rank = datamodule()
    other_rank.setup(stage)
    assert set(other_rank.splits) == splits


@needs_multi30k
def test_token_budget_batches_waste_little_padding_on_multi30k(tmp_path):
    dm = Seq2SeqDataModule(
        Multi30k(root=str(SHARED_DATA), download=False),
        {"kind": "sentencepiece", "vocab_size": 1000},
        max_tokens=2048,
        limit_train_examples=3000,
        test_splits=["test_2016_flickr"],
        cache_dir=str(tmp_path),
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert all(b.src.numel() <= 2048 and b.tgt_in.numel() <= 2048 for b in batches)
    assert sum(len(b) for b in batches) == len(dm.split_data("train"))
    assert dm.train_sampler.padding_fraction() < 0.1


def test_unknown_split_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as error:
        Seq2SeqDataModule(ToySequences(), {"kind": "word"}, test_splits=["dev"])
    assert error.value.key == "test_splits"
