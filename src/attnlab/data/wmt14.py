"""WMT14 English-German, the paper's data (§5.1): 4.5M sentence pairs, newstest2013 for
development, newstest2014 for test.

``attnlab-prepare wmt14_en_de`` fetches the standard archives (the same ones fairseq's
``prepare-wmt14en2de.sh`` uses: Europarl v7, Common Crawl, News Commentary v9, and the WMT14
dev and full test sets) into ``<data root>/wmt14_en_de/raw/``, then writes plain parallel text
the ``ParallelText`` reader takes: ``train.{en,de}.gz``, ``newstest2013.{en,de}``,
``newstest2014.{en,de}``. Training itself never downloads anything. Sub-words are learnt by
attnlab's SentencePiece step like every other dataset (the paper: ~37K shared BPE tokens).
"""

from __future__ import annotations

import argparse
import gzip
import html
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from attnlab.data.files import resolve_data_root
from attnlab.data.tasks import ParallelText

log = logging.getLogger(__name__)

FOLDER = "wmt14_en_de"
ARCHIVES = {
    "training-parallel-europarl-v7.tgz": "https://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
    "training-parallel-commoncrawl.tgz": "https://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz",
    "training-parallel-nc-v9.tgz": "https://www.statmt.org/wmt14/training-parallel-nc-v9.tgz",
    "dev.tgz": "https://www.statmt.org/wmt14/dev.tgz",
    "test-full.tgz": "https://www.statmt.org/wmt14/test-full.tgz",
}  # fmt: skip
# (archive, member prefix): the German-English halves of each training corpus.
TRAIN_CORPORA = [
    ("training-parallel-europarl-v7.tgz", "training/europarl-v7.de-en"),
    ("training-parallel-commoncrawl.tgz", "commoncrawl.de-en"),
    ("training-parallel-nc-v9.tgz", "training/news-commentary-v9.de-en"),
]
DEV = ("dev.tgz", "dev/newstest2013")
# The full newstest2014 (3,003 sentences), as fairseq and sacreBLEU's wmt14/full use it.
TEST = {
    "en": ("test-full.tgz", "test-full/newstest2014-deen-src.en.sgm"),
    "de": ("test-full.tgz", "test-full/newstest2014-deen-ref.de.sgm"),
}
MAX_WORDS = 250  # longer training lines are mostly misaligned web text
MAX_RATIO = 3.0  # word-count ratio beyond which a training pair is dropped
_SEGMENT = re.compile(r"<seg[^>]*>(.*)</seg>", re.IGNORECASE)


class WMT14(ParallelText):
    """The prepared WMT14 en-de folder (run ``attnlab-prepare wmt14_en_de`` once)."""

    def __init__(self, source_lang: str = "en", target_lang: str = "de", root: str | None = None):
        super().__init__(
            FOLDER, source_lang, target_lang, ("train", "newstest2013", "newstest2014"), root
        )

    def _path(self, split: str, lang: str) -> Path:
        try:
            return super()._path(split, lang)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}: WMT14 is not prepared under {self.directory.parent}; run "
                f"`attnlab-prepare wmt14_en_de --root {self.directory.parent}` once (downloads "
                "about 1.5 GB from statmt.org)"
            ) from None


def download(url: str, path: Path, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``path`` (renamed into place when complete); kept if already there."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)
    return path


def _member_lines(archive: tarfile.TarFile, name: str) -> list[str]:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        raise FileNotFoundError(f"{archive.name}: no member {name!r}") from None
    assert handle is not None
    return handle.read().decode("utf-8", errors="replace").splitlines()


def _sgm_segments(lines: Sequence[str]) -> list[str]:
    return [html.unescape(m.group(1)).strip() for line in lines if (m := _SEGMENT.search(line))]


def _keep(english: str, german: str) -> bool:
    words_en, words_de = len(english.split()), len(german.split())
    if not words_en or not words_de or max(words_en, words_de) > MAX_WORDS:
        return False
    return max(words_en, words_de) / min(words_en, words_de) <= MAX_RATIO


def _write(path: Path, lines: Iterator[str] | Sequence[str]) -> None:
    partial = path.with_name(f".{path.name}.part")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(partial, "wt", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
    os.replace(partial, path)


def prepare_wmt14(root: Path, urls: Mapping[str, str] | None = None) -> dict[str, int]:
    """Fetch (if needed) and extract WMT14 en-de under ``root/wmt14_en_de``; returns counts."""
    urls = dict(urls or ARCHIVES)
    folder, raw = root / FOLDER, root / FOLDER / "raw"
    archives = {name: download(urls[name], raw / name) for name in ARCHIVES}
    counts: dict[str, int] = {}

    english, german, dropped = [], [], 0
    for archive_name, prefix in TRAIN_CORPORA:
        with tarfile.open(archives[archive_name]) as archive:
            en = _member_lines(archive, f"{prefix}.en")
            de = _member_lines(archive, f"{prefix}.de")
        if len(en) != len(de):
            raise ValueError(f"{archive_name}: {prefix}.en has {len(en)} lines, .de {len(de)}")
        for e, d in zip(en, de, strict=True):
            e, d = e.strip(), d.strip()
            if _keep(e, d):
                english.append(e)
                german.append(d)
            else:
                dropped += 1
    _write(folder / "train.en.gz", english)
    _write(folder / "train.de.gz", german)
    counts["train"], counts["train_dropped"] = len(english), dropped
    log.info(
        "train: %d pairs (%d empty, over-long or unbalanced pairs dropped)", len(english), dropped
    )

    with tarfile.open(archives[DEV[0]]) as archive:
        dev = {lang: _member_lines(archive, f"{DEV[1]}.{lang}") for lang in ("en", "de")}
    for lang, lines in dev.items():
        _write(folder / f"newstest2013.{lang}", [line.strip() for line in lines])
    counts["newstest2013"] = len(dev["en"])

    test = {}
    for lang, (archive_name, member) in TEST.items():
        with tarfile.open(archives[archive_name]) as archive:
            test[lang] = _sgm_segments(_member_lines(archive, member))
    if len(test["en"]) != len(test["de"]):
        raise ValueError(f"newstest2014: {len(test['en'])} English vs {len(test['de'])} German")
    for lang, lines in test.items():
        _write(folder / f"newstest2014.{lang}", lines)
    counts["newstest2014"] = len(test["en"])
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="attnlab-prepare", description="fetch and prepare a dataset attnlab cannot download"
    )
    parser.add_argument("dataset", choices=["wmt14_en_de"])
    parser.add_argument("--root", default=None, help="data root (default: $ATTNLAB_DATA_DIR)")
    parser.add_argument("--mirror", default=None, help="a base URL holding the same archives")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    urls = {name: f"{args.mirror.rstrip('/')}/{name}" for name in ARCHIVES} if args.mirror else None
    counts = prepare_wmt14(resolve_data_root(args.root), urls)
    print(counts)


if __name__ == "__main__":
    main()
