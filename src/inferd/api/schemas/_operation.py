"""The route table's vocabulary: one :class:`Operation` per method and path.

An operation names its request body and its answers by Python type (pydantic models, or
types a ``TypeAdapter`` takes, such as ``list[VersionOut]``); :mod:`inferd.api.openapi`
turns the table into the OpenAPI document. Path parameters are found from the ``{name}``
placeholders in the path and described once, in :data:`PATH_PARAMETERS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter.

    Attributes:
        name: as it appears in the path, the query string or the header.
        where: ``path``, ``query`` or ``header``.
        type: its value's type (a ``TypeAdapter`` gives the schema).
        description: what it is for.
        required: path parameters always are.
        example: a value that works against the built-in examples.
    """

    name: str
    where: Literal["path", "query", "header"]
    type: Any
    description: str
    required: bool = False
    example: Any = None


@dataclass(frozen=True, slots=True)
class Media:
    """An answer or body that is not JSON (or not only JSON): media type -> value type."""

    types: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented operation.

    Attributes:
        method: the HTTP method, upper case.
        path: the path with ``{name}`` placeholders (each in :data:`PATH_PARAMETERS`).
        operation_id: unique across the document (clients name their methods after it).
        summary: one line.
        tag: the group it is listed under.
        responses: status -> the answer's type (JSON), or a :class:`Media`. Every operation
            also answers errors as ``{"error": ...}`` (the document's ``default`` answer).
        body: the request body's type (JSON) or a :class:`Media`; None for no body.
        body_required: whether an empty body is refused.
        params: query and header parameters.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    responses: dict[int, Any]
    body: Any = None
    body_required: bool = True
    params: tuple[Param, ...] = field(default=())

    @property
    def path_names(self) -> list[str]:
        """The names of the path's placeholders, in order."""
        return re.findall(r"{(\w+)}", self.path)


NonEmpty = Annotated[str, Field(min_length=1)]
VersionNumber = Annotated[int, Field(ge=1)]

PATH_PARAMETERS: dict[str, Param] = {
    p.name: p
    for p in (
        Param("model_name", "path", NonEmpty, "registered model name", True, "linear"),
        # V2 version labels are strings; /v1 uses version numbers (see VERSION_NUMBER).
        Param("model_version", "path", NonEmpty, "version number", True, "1"),
        Param("job_id", "path", NonEmpty, "job id", True, "0123456789ab"),
        Param("experiment_id", "path", NonEmpty, "experiment id", True, "exp-0123456789ab"),
        Param("rollout_id", "path", NonEmpty, "rollout id", True, "ro-0123456789ab"),
        Param(
            "key_id", "path", NonEmpty, "the public id of an API key (8 hex digits)", True,
            "1a2b3c4d",
        ),
    )
}  # fmt: skip
VERSION_NUMBER = Param("model_version", "path", VersionNumber, "version number", True, 1)
LIMIT = Param("limit", "query", Annotated[int, Field(ge=1, le=10_000)], "at most")
