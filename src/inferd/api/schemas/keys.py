"""Bodies of ``/v1/keys``: API keys, whose secrets are shown once, at creation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from inferd.api.schemas._operation import Operation, Param

Role = Literal["predict", "operator", "admin"]


class NewKey(BaseModel):
    """The key to create."""

    role: Role
    models: list[str] | str | None = Field(
        None, description="the models the key may use (a list, or comma-separated); null: all"
    )
    name: str | None = Field(None, max_length=200, description="a free-form label")


class KeyRecord(BaseModel):
    """A key as the server knows it (never its secret)."""

    id: str = Field(description="the public id (8 hex digits)")
    role: Role
    models: list[str] | None = Field(description="null: every model")
    name: str
    created_by: str
    created_at: str | None
    revoked_at: str | None = Field(description="null while the key is valid")


class CreatedKey(KeyRecord):
    """A new key, with its secret: store it now, it is never shown again."""

    key: str


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/keys", "list_keys", "API keys (never their secrets)", "keys",
              {200: list[KeyRecord]},
              params=(Param("revoked", "query", bool, "include revoked keys"),)),
    Operation("POST", "/v1/keys", "create_key", "create a key; the answer holds it, once",
              "keys", {201: CreatedKey}, body=NewKey),
    Operation("DELETE", "/v1/keys/{key_id}", "revoke_key", "revoke a key", "keys",
              {200: KeyRecord}),
    Operation("POST", "/v1/keys/{key_id}/revoke", "revoke_key_post",
              "revoke a key (the same as DELETE)", "keys", {200: KeyRecord}),
)  # fmt: skip
