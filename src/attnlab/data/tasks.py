"""Tasks turn raw files into (source, target) text pairs; everything after that is shared.

A task has ``splits`` (names), ``read(split) -> list[Example]`` and ``fingerprint(split)`` (a string
that changes when the split's content does; cache keys are built from it). Adding a dataset in a known format is a config file that
points one of these readers at its files.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from pathlib import Path

from attnlab.config_errors import ConfigError, require
from attnlab.data.files import (
    RemoteFile,
    ensure_files,
    resolve_data_root,
    sha256_of,
    verify_checksums,
)


@dataclass(frozen=True)
class Example:
    source: str
    target: str  # the reference the model is trained on (and scored against by default)
    references: tuple[str, ...] = ()  # every reference, where a split has several
    origin: str = ""  # where it was read ("file:line (id)"), for error messages


class DataFileError(ValueError):
    """Bad content in a data file; the message names the file and line."""


def read_lines(path: Path) -> list[str]:
    """Read a (possibly gzipped) UTF-8 text file, one item per line, naming the line on bad bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise DataFileError(f"{path}:{number}: invalid UTF-8 ({error.reason})") from None
    return out


def read_parallel(source_path: Path, target_path: Path) -> list[Example]:
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataFileError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
            "parallel files must align line by line"
        )
    for number, (src, tgt) in enumerate(zip(sources, targets, strict=True), start=1):
        for path, text in ((source_path, src), (target_path, tgt)):
            if not text.strip():
                raise DataFileError(f"{path}:{number}: empty line in a parallel corpus")
    return [Example(s, t) for s, t in zip(sources, targets, strict=True)]


_MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{name}"
_MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
}


class Multi30k:
    """Multi30k task 1 (Elliott et al. 2016), raw true-cased text, either direction."""

    splits = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco")
    folder = "multi30k_en_de"

    def __init__(
        self,
        source_lang: str = "de",
        target_lang: str = "en",
        root: str | None = None,
        download: bool = True,
        verify: bool = True,
    ):
        for key, lang in (("source_lang", source_lang), ("target_lang", target_lang)):
            require(lang in ("de", "en"), key, f"must be 'de' or 'en', got {lang!r}")
        require(source_lang != target_lang, "target_lang", "must differ from source_lang")
        self.source_lang, self.target_lang = source_lang, target_lang
        self.directory = resolve_data_root(root) / self.folder
        self.files = {
            n: RemoteFile(_MULTI30K_URL.format(name=n), h) for n, h in _MULTI30K_SHA256.items()
        }
        self.download, self.verify = download, verify
        self._verified: set[str] = set()

    @property
    def name(self) -> str:
        return f"multi30k_{self.source_lang}-{self.target_lang}"

    def _path(self, split: str, lang: str) -> Path:
        name = f"{split}.{lang}.gz"
        if name not in self._verified:
            ensure_files(self.directory, {name: self.files[name]}, download=self.download)
            if self.verify:
                verify_checksums(self.directory, {name: self.files[name]})
            self._verified.add(name)
        return self.directory / name

    def read(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise ConfigError("split", f"unknown split {split!r}; Multi30k has {list(self.splits)}")
        return read_parallel(
            self._path(split, self.source_lang), self._path(split, self.target_lang)
        )

    def fingerprint(self, split: str) -> str:
        return f"{self.name}:{split}:" + ",".join(
            self.files[f"{split}.{lang}.gz"].sha256[:16]
            for lang in (self.source_lang, self.target_lang)
        )


class ParallelText:
    """Any parallel corpus laid out as ``<folder>/<split>.<src>[.gz]`` + ``<split>.<tgt>[.gz]``."""

    def __init__(
        self,
        folder: str,
        source_lang: str,
        target_lang: str,
        splits: tuple[str, ...] = ("train", "valid", "test"),
        root: str | None = None,
    ):
        self.directory = resolve_data_root(root) / folder
        self.source_lang, self.target_lang, self.splits = source_lang, target_lang, tuple(splits)

    @property
    def name(self) -> str:
        return f"{self.directory.name}_{self.source_lang}-{self.target_lang}"

    def _path(self, split: str, lang: str) -> Path:
        for candidate in (
            self.directory / f"{split}.{lang}",
            self.directory / f"{split}.{lang}.gz",
        ):
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"missing data file {self.directory / f'{split}.{lang}'}[.gz]")

    def read(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise ConfigError(
                "split", f"unknown split {split!r}; this corpus has {list(self.splits)}"
            )
        return read_parallel(
            self._path(split, self.source_lang), self._path(split, self.target_lang)
        )

    def fingerprint(self, split: str) -> str:
        paths = [self._path(split, lang) for lang in (self.source_lang, self.target_lang)]
        return f"{self.name}:{split}:" + ",".join(sha256_of(p)[:16] for p in paths)


class ToySequences:
    """Synthetic task for tests: copy or reverse a sequence of symbols. No files; trains in seconds."""

    splits = ("train", "val", "test")

    def __init__(
        self,
        operation: str = "reverse",
        num_train: int = 2000,
        num_eval: int = 100,
        vocab: int = 10,
        min_len: int = 3,
        max_len: int = 8,
        seed: int = 1234,
    ):
        require(
            operation in ("copy", "reverse"),
            "operation",
            f"must be copy or reverse, got {operation!r}",
        )
        require(2 <= vocab <= 26, "vocab", f"must be in [2, 26], got {vocab}")
        require(
            1 <= min_len <= max_len,
            "min_len",
            f"need 1 <= min_len <= max_len, got {min_len}, {max_len}",
        )
        self.operation = operation
        self.sizes = {"train": num_train, "val": num_eval, "test": num_eval}
        self.vocab, self.min_len, self.max_len, self.seed = vocab, min_len, max_len, seed
        self.name = f"toy_{operation}"

    def read(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise ConfigError(
                "split", f"unknown split {split!r}; the toy task has {list(self.splits)}"
            )
        rng = random.Random(f"{self.seed}:{split}")
        symbols = [chr(ord("a") + i) for i in range(self.vocab)]
        examples = []
        for _ in range(self.sizes[split]):
            seq = [rng.choice(symbols) for _ in range(rng.randint(self.min_len, self.max_len))]
            out = reversed(seq) if self.operation == "reverse" else seq
            examples.append(Example(" ".join(seq), " ".join(out)))
        return examples

    def fingerprint(self, split: str) -> str:
        return (
            f"{self.name}:{split}:{self.sizes[split]}:{self.vocab}:{self.min_len}:"
            f"{self.max_len}:{self.seed}"
        )
