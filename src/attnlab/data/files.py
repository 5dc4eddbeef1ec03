"""Where data lives, and making sure the right bytes are there (checksummed, atomic).

The data root resolves as: the ``data.root`` config value > ``$ATTNLAB_DATA_DIR`` > a per-user
cache directory. A task names its files with their canonical URL and sha256; missing files are
downloaded, verified and renamed into place. With no network the error lists every missing
file and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "attnlab"


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$ATTNLAB_DATA_DIR``, else ``~/.cache/attnlab/data``."""
    if root:
        return Path(root).expanduser().resolve()
    if os.environ.get("ATTNLAB_DATA_DIR"):
        return Path(os.environ["ATTNLAB_DATA_DIR"]).expanduser().resolve()
    return default_cache_dir() / "data"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_files(
    directory: Path,
    files: Mapping[str, RemoteFile],
    *,
    download: bool = True,
    timeout: float = 30.0,
) -> None:
    """Make every file in ``files`` exist in ``directory`` with its sha256, or say what is missing."""
    missing: list[str] = []
    for name, remote in files.items():
        path = directory / name
        if path.exists():
            continue
        if download:
            try:
                with urllib.request.urlopen(remote.url, timeout=timeout) as response:
                    data = response.read()
            except OSError:
                missing.append(name)
                continue
            actual = hashlib.sha256(data).hexdigest()
            if actual != remote.sha256:
                raise ValueError(
                    f"{remote.url}: sha256 {actual} does not match expected {remote.sha256}"
                )
            atomic_write_bytes(path, data)
        else:
            missing.append(name)
    if missing:
        listing = "\n".join(f"  {directory / name}  <- {files[name].url}" for name in missing)
        raise FileNotFoundError(
            f"{len(missing)} data file(s) missing under {directory} and could not be downloaded:\n"
            f"{listing}\nPut them there (or set data.root / $ATTNLAB_DATA_DIR to a folder that has them)."
        )


def verify_checksums(directory: Path, files: Mapping[str, RemoteFile]) -> None:
    """Raise naming the first file whose content differs from its published checksum."""
    for name, remote in files.items():
        actual = sha256_of(directory / name)
        if actual != remote.sha256:
            raise ValueError(
                f"{directory / name}: sha256 {actual} does not match the published {remote.sha256}; "
                "the file is corrupt or a different version"
            )
