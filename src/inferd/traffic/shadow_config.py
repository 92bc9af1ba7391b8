"""A model's shadow configuration: which version gets a copy of how much of its traffic.

:class:`ShadowSpec` is the body of ``PUT /v1/models/{m}/shadow`` (and the OpenAPI schema);
:func:`parse_spec` turns its validation failures into an :class:`InvalidInput` naming the
field. :class:`ShadowConfig` is what the registry holds and every serving process applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferd.errors import InvalidInput

DEFAULT_QUEUE_SIZE = 1_000
MAX_QUEUE_SIZE = 100_000


class ShadowSpec(BaseModel):
    """Mirror ``fraction`` of the model's answered requests to ``version``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the shadow version (a registered version number)")
    fraction: float = Field(
        ge=0.0, le=1.0, description="share of requests mirrored, 0..1 (sampled by request id)"
    )
    queue_size: int = Field(
        DEFAULT_QUEUE_SIZE, ge=1, le=MAX_QUEUE_SIZE,
        description="copies waiting for the shadow per process; more are dropped and counted",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """A stored shadow configuration."""

    model: str
    version: int
    fraction: float
    queue_size: int
    updated_by: str = ""
    updated_at: datetime | None = None

    def same(self, other: ShadowConfig | None) -> bool:
        """True when ``other`` mirrors alike (who changed it, and when, aside)."""
        return other is not None and self._key() == other._key()

    def _key(self) -> tuple[str, int, float, int]:
        return self.model, self.version, self.fraction, self.queue_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "fraction": self.fraction,
            "queue_size": self.queue_size, "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at is not None else None,
        }  # fmt: skip


def parse_spec(data: Any) -> ShadowSpec:
    """Validate a shadow body.

    Raises:
        InvalidInput: naming the first bad field, e.g. ``shadow.fraction``.
    """
    if not isinstance(data, dict):
        raise InvalidInput("shadow", "a JSON object", type(data).__name__)
    try:
        return ShadowSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        got = repr(first.get("input"))[:80] if first["type"] != "missing" else "nothing"
        raise InvalidInput(f"shadow{field}", first["msg"].lower(), got) from err
