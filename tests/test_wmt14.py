"""WMT14 preparation and reading, on a tiny sample in the real archives' layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from attnlab.data.wmt14 import ARCHIVES, WMT14, prepare_wmt14


def make_archive(path: Path, members: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def sgm(lang: str, sentences: list[str]) -> str:
    segments = "".join(f'<seg id="{i}">{s}</seg>\n' for i, s in enumerate(sentences, 1))
    return f'<srcset setid="newstest2014" srclang="any">\n<doc sysid="ref" docid="1" genre="news" origlang="{lang}">\n<p>\n{segments}</p>\n</doc>\n</srcset>\n'


@pytest.fixture
def mirror(tmp_path) -> dict[str, str]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    make_archive(
        folder / "training-parallel-europarl-v7.tgz",
        {
            "training/europarl-v7.de-en.en": "Resumption of the session\n\nI declare resumed.\n",
            "training/europarl-v7.de-en.de": "Wiederaufnahme der Sitzungsperiode\nLeer\nIch erkläre.\n",
        },
    )
    long = " ".join(["word"] * 300)
    make_archive(
        folder / "training-parallel-commoncrawl.tgz",
        {
            "commoncrawl.de-en.en": f"A cat.\n{long}\n",
            "commoncrawl.de-en.de": "Eine Katze.\nLang\n",
        },
    )
    make_archive(
        folder / "training-parallel-nc-v9.tgz",
        {
            "training/news-commentary-v9.de-en.en": "Gold at $10,000?\n",
            "training/news-commentary-v9.de-en.de": "Gold für 10.000 Dollar?\n",
        },
    )
    make_archive(
        folder / "dev.tgz",
        {"dev/newstest2013.en": "A sentence.\nTwo.\n", "dev/newstest2013.de": "Ein Satz.\nZwei.\n"},
    )
    make_archive(
        folder / "test-full.tgz",
        {
            "test-full/newstest2014-deen-src.en.sgm": sgm("en", ["Gutach: safety &amp; more", "B"]),
            "test-full/newstest2014-deen-ref.de.sgm": sgm(
                "de", ["Gutach: Sicherheit &amp; mehr", "B"]
            ),
        },
    )
    return {name: (folder / name).as_uri() for name in ARCHIVES}


def test_prepare_extracts_cleans_and_the_reader_reads_it(tmp_path, mirror):
    counts = prepare_wmt14(tmp_path / "data", mirror)
    # europarl: 1 empty pair dropped; commoncrawl: a 300-word line dropped
    assert counts == {"train": 4, "train_dropped": 2, "newstest2013": 2, "newstest2014": 2}
    task = WMT14(root=str(tmp_path / "data"))
    train = task.read("train")
    assert [e.source for e in train] == [
        "Resumption of the session",
        "I declare resumed.",
        "A cat.",
        "Gold at $10,000?",
    ]
    assert train[1].target == "Ich erkläre."
    test = task.read("newstest2014")
    assert (
        test[0].source == "Gutach: safety & more" and test[0].target == "Gutach: Sicherheit & mehr"
    )
    assert [e.target for e in task.read("newstest2013")] == ["Ein Satz.", "Zwei."]
    assert [
        e.source for e in WMT14("de", "en", root=str(tmp_path / "data")).read("newstest2013")
    ] == ["Ein Satz.", "Zwei."]


def test_an_unprepared_folder_says_how_to_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="attnlab-prepare wmt14_en_de"):
        WMT14(root=str(tmp_path)).read("train")


def test_the_data_config_builds_the_task(make_cfg, tmp_path, mirror):
    from attnlab.config import build

    prepare_wmt14(tmp_path / "data", mirror)
    cfg = make_cfg("data=wmt14_en_de", f"data.task.root={tmp_path / 'data'}")
    datamodule = build(cfg.data, "data")
    assert len(datamodule._read("newstest2014")) == 2
    assert datamodule.valid_split == "newstest2013"
