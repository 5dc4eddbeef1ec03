"""What a speech corpus is, without torch: manifests of audio files or precomputed features,
and the filterbank settings that turn audio into frames.

:mod:`attnlab.data.speech` builds batches from these; keeping them here lets the config
validator build a speech task and check its data settings before torch and Lightning load
(``data=an4 data.valid_split=nope``: 1.8 s on a 2-core CPU, against 7-8 s before).
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from attnlab.config_errors import ConfigError, require
from attnlab.data.files import resolve_data_root, sha256_of
from attnlab.data.tasks import DataFileError, Example


@dataclass(frozen=True)
class FbankSettings:
    """Kaldi ``compute-fbank-feats`` options (the defaults of ESPnet's recipes)."""

    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    sample_rate: int = 16000

    def __post_init__(self):
        require(self.num_mel_bins >= 1, "features.num_mel_bins", "must be >= 1")
        require(self.frame_shift_ms > 0, "features.frame_shift_ms", "must be > 0")
        require(
            self.frame_length_ms >= self.frame_shift_ms,
            "features.frame_length_ms",
            "must be >= frame_shift_ms",
        )
        require(self.sample_rate > 0, "features.sample_rate", "must be > 0")
        require(self.dither >= 0, "features.dither", "must be >= 0")

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None) -> FbankSettings:
        """The settings of a ``features:`` config block; an unknown key is named."""
        settings = dict(settings or {})
        known = [f.name for f in fields(cls)]
        for key in [k for k in settings if k not in known]:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {known}"
            raise ConfigError(f"features.{key}", f"unknown filterbank setting{hint}")
        return cls(**settings)


def _read_manifest(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a TSV manifest with a header, as (line number, row); errors name file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"missing manifest {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        try:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DataFileError(
                    f"{path}:1: manifest has no column(s) {missing}; header: {reader.fieldnames}"
                )
            rows = []
            for row in reader:
                line = reader.line_num
                if any(row.get(c) in (None, "") for c in columns):
                    empty = [c for c in columns if row.get(c) in (None, "")]
                    raise DataFileError(f"{path}:{line}: empty or missing field(s) {empty}")
                rows.append((line, row))
        except UnicodeDecodeError as error:
            raise DataFileError(f"{path}: invalid UTF-8 ({error.reason})") from None
    return rows


class AudioManifest:
    """Audio files listed in ``<folder>/<split>.tsv`` (columns named in config), paths relative
    to the folder. AN4 (``data=an4``) is one; any corpus with such manifests is a config file."""

    kind = "audio"
    metric = "wer"

    def __init__(
        self,
        folder: str,
        splits: Sequence[str] = ("train", "dev", "test"),
        root: str | None = None,
        id_column: str = "utt_id",
        audio_column: str = "audio",
        text_column: str = "text",
    ):
        self.directory = resolve_data_root(root) / folder
        self.splits = tuple(splits)
        self.columns = (id_column, audio_column, text_column)

    @property
    def name(self) -> str:
        return self.directory.name

    def manifest(self, split: str) -> Path:
        if split not in self.splits:
            raise ConfigError(
                "split", f"unknown split {split!r}; {self.name} has {list(self.splits)}"
            )
        return self.directory / f"{split}.tsv"

    def read(self, split: str) -> list[Example]:
        path = self.manifest(split)
        id_column, input_column, text_column = self.columns
        return [
            Example(
                source=self._input(row[input_column]),
                target=row[text_column].strip(),
                origin=f"{path}:{line} ({row[id_column]})",
            )
            for line, row in _read_manifest(path, self.columns)
        ]

    def _input(self, listed: str) -> str:
        """Where an input listed in the manifest is: audio paths are relative to the folder."""
        return str(self.directory / listed)

    def fingerprint(self, split: str) -> str:
        return f"{self.name}:{split}:{sha256_of(self.manifest(split))[:16]}"


class FeatureManifest(AudioManifest):
    """Precomputed features: ``<folder>/<split>.tsv`` with id, features (a ``.npy`` path, an
    ``ark:file:offset`` location or any kaldiio spec) and text columns."""

    kind = "features"

    def __init__(
        self,
        folder: str,
        splits: Sequence[str] = ("train", "dev", "test"),
        root: str | None = None,
        id_column: str = "utt_id",
        features_column: str = "features",
        text_column: str = "text",
    ):
        super().__init__(folder, splits, root, id_column, features_column, text_column)

    def _input(self, listed: str) -> str:
        # Kaldi locations ("ark:/x.ark:12") stay whole; relative file paths are under the folder.
        if listed.startswith("ark:") or Path(listed.split(":")[0]).is_absolute():
            return listed
        return str(self.directory / listed)
