"""The model registry: SQL store, artifacts by URI with digests, stages, gates, audit log."""

from inferd.registry.artifacts import ArtifactStore, FsspecArtifactStore, digest_path
from inferd.registry.records import AuditEntry, ModelRecord, Stage, Status, VersionRecord
from inferd.registry.store import Registry

__all__ = [
    "ArtifactStore",
    "AuditEntry",
    "FsspecArtifactStore",
    "ModelRecord",
    "Registry",
    "Stage",
    "Status",
    "VersionRecord",
    "digest_path",
]
