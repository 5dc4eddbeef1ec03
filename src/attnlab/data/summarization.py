"""Summarization corpora: JSON lines of (document, summary) records, one or several summaries.

``JsonlSummaries`` reads ``<root>/<folder>/<split>.jsonl[.gz]``; DialogSum is a config of it
(``conf/data/dialogsum.yaml``). Where a record has several reference summaries (DialogSum's
test split has three), the first is the training/scoring target and all of them are kept for
multi-reference ROUGE.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from attnlab.config_errors import ConfigError, require
from attnlab.data.files import resolve_data_root, sha256_of
from attnlab.data.tasks import DataFileError, Example


class JsonlSummaries:
    metric = "rouge"

    def __init__(
        self,
        folder: str,
        source_field: str = "document",
        target_fields: Sequence[str] = ("summary",),
        splits: Sequence[str] = ("train", "dev", "test"),
        root: str | None = None,
        sha256: Mapping[str, str] | None = None,
        turn_separator: str = " ",
    ):
        require(len(target_fields) > 0, "target_fields", "name at least one summary field")
        self.directory = resolve_data_root(root) / folder
        self.source_field, self.target_fields = source_field, list(target_fields)
        self.splits = tuple(splits)
        self.sha256 = dict(sha256 or {})
        self.turn_separator = turn_separator
        self._verified: set[str] = set()

    @property
    def name(self) -> str:
        return self.directory.name

    def _path(self, split: str) -> Path:
        for candidate in (self.directory / f"{split}.jsonl", self.directory / f"{split}.jsonl.gz"):
            if candidate.exists():
                expected = self.sha256.get(candidate.name)
                if expected and candidate.name not in self._verified:
                    actual = sha256_of(candidate)
                    if actual != expected:
                        raise DataFileError(
                            f"{candidate}: sha256 {actual} does not match the published "
                            f"{expected}; the file is corrupt or a different version"
                        )
                    self._verified.add(candidate.name)
                return candidate
        raise FileNotFoundError(
            f"missing data file {self.directory / split}.jsonl[.gz]; put the {self.name} files "
            f"there (or set data.task.root / $ATTNLAB_DATA_DIR to a folder that has {self.name}/)"
        )

    def read(self, split: str) -> list[Example]:
        if split not in self.splits:
            raise ConfigError(
                "split", f"unknown split {split!r}; {self.name} has {list(self.splits)}"
            )
        path = self._path(split)
        opener = gzip.open if path.suffix == ".gz" else open
        examples = []
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                examples.append(self._example(path, number, raw))
        return examples

    def _example(self, path: Path, number: int, raw: bytes) -> Example:
        where = f"{path}:{number}"
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataFileError(f"{where}: invalid UTF-8 ({error.reason})") from None
        except json.JSONDecodeError as error:
            raise DataFileError(f"{where}: malformed JSON record ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataFileError(f"{where}: a record must be a JSON object")
        source = record.get(self.source_field)
        if not isinstance(source, str) or not source.strip():
            raise DataFileError(f"{where}: no text in field {self.source_field!r}")
        summaries = [record[f] for f in self.target_fields if f in record]
        if not summaries or not all(isinstance(s, str) and s.strip() for s in summaries):
            raise DataFileError(f"{where}: no summary in fields {self.target_fields}")
        document = self.turn_separator.join(
            line.strip() for line in source.splitlines() if line.strip()
        )
        summaries = [" ".join(s.split()) for s in summaries]
        return Example(document, summaries[0], tuple(summaries) if len(summaries) > 1 else ())

    def fingerprint(self, split: str) -> str:
        return (
            f"{self.name}:{split}:{sha256_of(self._path(split))[:16]}:{self.source_field}:"
            + ",".join(self.target_fields)
        )
