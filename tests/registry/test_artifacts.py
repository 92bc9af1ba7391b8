from pathlib import Path

import pytest

from inferd.errors import ArtifactError
from inferd.registry import FsspecArtifactStore, digest_path
from inferd.registry.artifacts import local_path


def test_digest_of_file_and_folder(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    digest, size = digest_path(f)
    assert digest == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert size == 3
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"x")
    (folder / "variables" / "v").write_bytes(b"yy")
    first, size = digest_path(folder)
    assert size == 3
    (folder / "variables" / "v").write_bytes(b"yz")
    assert digest_path(folder)[0] != first


def test_fetch_verifies_the_digest(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path / "root"), tmp_path / "cache")
    f = tmp_path / "model.onnx"
    f.write_bytes(b"weights")
    digest, _ = digest_path(f)
    assert store.fetch(str(f), digest) == f
    assert store.fetch(f"file://{f}", digest) == f
    f.write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="digest mismatch"):
        store.fetch(str(f), digest)
    with pytest.raises(ArtifactError, match="not found"):
        store.fetch(str(tmp_path / "missing.onnx"), digest)


def test_upload_copies_into_the_root(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path / "root"), tmp_path / "cache")
    f = tmp_path / "model.onnx"
    f.write_bytes(b"weights")
    uri = store.upload(f, "m", 3)
    assert Path(uri) == tmp_path / "root" / "m" / "3" / "model.onnx"
    assert Path(uri).read_bytes() == b"weights"


def test_remote_uris_go_through_fsspec(tmp_path: Path) -> None:
    store = FsspecArtifactStore("memory://bucket", tmp_path / "cache")
    f = tmp_path / "model.onnx"
    f.write_bytes(b"remote weights")
    uri = store.upload(f, "m", 1)
    assert uri == "memory://bucket/m/1/model.onnx"
    digest, size = store.describe(uri)
    assert size == len(b"remote weights")
    fetched = store.fetch(uri, digest)
    assert fetched.read_bytes() == b"remote weights"
    assert local_path(uri) is None
    with pytest.raises(ArtifactError, match="no filesystem"):
        store.describe("nosuchscheme://x/y")
