"""API keys: roles, model scopes, and their store in the registry.

A key reads ``inferd_<id>_<secret>``: ``id`` (8 hex digits) is public and names the key in
listings and logs; ``secret`` is 32 random bytes. The registry keeps only the SHA-256 of the
whole key (a 256-bit random secret needs no slow hash: nothing can be guessed from it), so a
leaked database leaks no usable key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import inspect, select, update

from inferd.errors import InvalidInput, KeyNotFound
from inferd.registry import Registry
from inferd.registry.schema import api_keys

PREFIX = "inferd_"


class Role(IntEnum):
    """What a key may do; each role includes the ones below it."""

    PREDICT = 1  # inference and metadata of the models in scope
    OPERATOR = 2  # + repository load/unload, /v1 models and jobs, metrics, statistics
    ADMIN = 3  # + /v1/keys

    @classmethod
    def parse(cls, text: str) -> Role:
        """Raises InvalidInput for an unknown role name."""
        try:
            return cls[text.upper()]
        except KeyError:
            raise InvalidInput("role", "predict, operator or admin", repr(text)) from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the server knows it (never the secret itself).

    Attributes:
        id: the public prefix.
        role: what it may do.
        models: the model names it may use; None for every model.
        name: a free-form label.
    """

    id: str
    role: Role
    models: frozenset[str] | None = None
    name: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows_model(self, model: str) -> bool:
        """Whether the key's scope includes ``model`` (``*``: every model)."""
        scope = self.models
        return scope is None or (model != "*" and model in scope)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role.label,
            "models": sorted(self.models) if self.models is not None else None,
            "name": self.name,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def hash_key(key: str | bytes) -> str:
    """The SHA-256 hex digest of a key, as stored and as looked up."""
    raw = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public id."""
    key_id = secrets.token_hex(4)
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def parse_models(raw: str | Iterable[str] | None) -> frozenset[str] | None:
    """``"a,b"`` or a list -> a scope; None or empty -> every model."""
    if raw is None:
        return None
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    clean = frozenset(n.strip() for n in names if isinstance(n, str) and n.strip())
    if any(not isinstance(n, str) for n in names):
        raise InvalidInput("models", "model names", repr(names)[:80])
    return clean or None


class KeyStore:
    """API keys in the registry database. Every change bumps the registry revision, which
    each replica polls, so a revocation reaches every replica within one poll interval.

    Args:
        registry: the registry whose database holds the ``api_keys`` table.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def create(
        self, role: Role, models: frozenset[str] | None = None, name: str = "", actor: str = ""
    ) -> tuple[str, ApiKey]:
        """Create a key; returns the key (shown once) and its record."""
        key, key_id = new_key()
        record = ApiKey(key_id, role, models, name, actor or "anonymous", datetime.now(UTC))
        with self.registry.transaction() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=key_id, key_hash=hash_key(key), role=role.label,
                    models=sorted(models) if models is not None else None, name=name,
                    created_by=record.created_by, created_at=record.created_at,
                )
            )  # fmt: skip
            detail = {"id": key_id}
            self.registry.record_audit(
                conn, actor, "create_key", "", None, None, role.label, detail
            )
        return key, record

    def revoke(self, key_id: str, actor: str = "") -> ApiKey:
        """Revoke a key at once. Raises KeyNotFound (404) for an unknown id."""
        now = datetime.now(UTC)
        with self.registry.transaction() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise KeyNotFound(key_id)
            if done.rowcount:
                self.registry.record_audit(
                    conn, actor, "revoke_key", "", None, row.role, None, {"id": key_id}
                )
        return _record(row)

    def list(self, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first."""
        with self.registry.connection() as conn:
            stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
            if not include_revoked:
                stmt = stmt.where(api_keys.c.revoked_at.is_(None))
            return [_record(r) for r in conn.execute(stmt)]

    def active(self) -> dict[str, ApiKey]:
        """Hash -> key for every key not revoked; empty while the table does not exist."""
        with self.registry.connection() as conn:
            if not inspect(conn).has_table(api_keys.name):
                return {}  # not migrated yet: no keys
            rows = conn.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None)))
            return {r.key_hash: _record(r) for r in rows}


def _record(row: Any) -> ApiKey:
    models = frozenset(row.models) if row.models is not None else None
    return ApiKey(
        row.id, Role.parse(row.role), models, row.name, row.created_by, row.created_at,
        row.revoked_at,
    )  # fmt: skip
