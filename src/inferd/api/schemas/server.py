"""Operations of the server itself: Prometheus metrics and this document."""

from __future__ import annotations

from typing import Any

from inferd.api.schemas._operation import Media, Operation

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/metrics", "metrics", "Prometheus metrics", "metrics",
              {200: Media({"text/plain": str})}),
    Operation("GET", "/openapi.json", "openapi", "this document (OpenAPI 3.1)", "v1",
              {200: dict[str, Any]}),
)  # fmt: skip
