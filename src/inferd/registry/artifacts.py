"""Artifact stores: where model files live, addressed by URI, verified by SHA-256.

    ArtifactStore (ABC)
    └── FsspecArtifactStore   file:// and plain paths as they are; s3://, gs://, ... through
                              fsspec (install the backend, e.g. s3fs), cached locally by digest

A digest is ``sha256:<hex>`` of the file, or for a folder (a TF SavedModel) of every file's
relative path and bytes in sorted order.
"""

from __future__ import annotations

import hashlib
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from inferd.errors import ArtifactError

_CHUNK = 1 << 20


def digest_path(path: Path) -> tuple[str, int]:
    """SHA-256 digest and total size of a file or folder.

    Raises:
        ArtifactError: the path does not exist or cannot be read.
    """
    sha = hashlib.sha256()
    size = 0
    try:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                sha.update(file.relative_to(path).as_posix().encode() + b"\0")
                size += _feed(sha, file)
        elif path.is_file():
            size = _feed(sha, path)
        else:
            raise ArtifactError(f"artifact '{path}': not found; check the path or URI")
    except OSError as err:
        raise ArtifactError(f"artifact '{path}': cannot be read: {err}") from err
    return f"sha256:{sha.hexdigest()}", size


def _feed(sha: hashlib._Hash, file: Path) -> int:
    size = 0
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI or plain path; None for remote URIs."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:3] == ":\\"):
        return Path(uri).expanduser().resolve()
    return None


class ArtifactStore(ABC):
    """Fetches artifacts to local disk and uploads local artifacts."""

    @abstractmethod
    def fetch(self, uri: str, digest: str) -> Path:
        """A local path holding the artifact, verified against ``digest``.

        Raises:
            ArtifactError: missing, unreadable, or the digest does not match.
        """

    @abstractmethod
    def upload(self, source: Path, model: str, version: int) -> str:
        """Copy a local artifact into the store; return its URI."""

    def describe(self, uri: str) -> tuple[str, int]:
        """Digest and size of the artifact at ``uri``."""
        local = local_path(uri)
        if local is not None:
            return digest_path(local)
        fetched = self._download(uri)
        return digest_path(fetched)

    def _download(self, uri: str) -> Path:
        raise ArtifactError(f"artifact '{uri}': this store reads local paths only")


class FsspecArtifactStore(ArtifactStore):
    """Local paths directly, any fsspec URI through a local cache.

    Args:
        root: URI of the folder uploads go to (``<root>/<model>/<version>/<file>``).
        cache: local folder for downloaded artifacts.
    """

    def __init__(self, root: str, cache: Path) -> None:
        self.root = root.rstrip("/")
        self.cache = cache

    def fetch(self, uri: str, digest: str) -> Path:
        local = local_path(uri)
        path = local if local is not None else self._cached(uri, digest)
        actual, _ = digest_path(path)
        if actual != digest:
            raise ArtifactError(
                f"artifact '{uri}': digest mismatch: expected {digest}, got {actual}; "
                "the file changed after it was registered, register it as a new version"
            )
        return path

    def upload(self, source: Path, model: str, version: int) -> str:
        target = f"{self.root}/{model}/{version}/{source.name}"
        local = local_path(target)
        try:
            if local is not None:
                local.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(source, local, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, local)
            else:
                fs, path = _filesystem(target)
                fs.put(str(source), path, recursive=source.is_dir())
        except OSError as err:
            raise ArtifactError(f"artifact upload to '{target}' failed: {err}") from err
        return target if local is None else str(local)

    def _cached(self, uri: str, digest: str) -> Path:
        folder = self.cache / digest.replace(":", "-")
        target = folder / Path(urlparse(uri).path).name
        if not target.exists():
            downloaded = self._download(uri)
            folder.mkdir(parents=True, exist_ok=True)
            downloaded.rename(target)
        return target

    def _download(self, uri: str) -> Path:
        fs, path = _filesystem(uri)
        staging = self.cache / ".downloads" / hashlib.sha256(uri.encode()).hexdigest()
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        target = staging / Path(urlparse(uri).path).name
        try:
            fs.get(path, str(target), recursive=fs.isdir(path))
        except Exception as err:
            raise ArtifactError(f"artifact '{uri}': download failed: {err}") from err
        return target


def _filesystem(uri: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as err:
        raise ArtifactError(
            f"artifact '{uri}': remote URIs need fsspec: pip install fsspec (and its backend)"
        ) from err
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise ArtifactError(
            f"artifact '{uri}': no filesystem for this URI ({err}); install its fsspec backend"
        ) from err
    return fs, path
