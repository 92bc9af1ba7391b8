"""Request and response models of the HTTP API, and the route table built on them.

Each area's module holds its pydantic models and an ``OPERATIONS`` tuple (method, path,
operation id, summary, parameters, request body, answers by status);
:func:`inferd.api.openapi.openapi_document` turns :data:`OPERATIONS` into the OpenAPI
document. The models document the API; the routes (``inferd.api.http`` and the ``/v1``
route modules) keep their own checks on the hot path. To document a new route, add an
``Operation`` to its area's tuple (a new area: a module and one line here).
"""

from __future__ import annotations

from inferd.api.schemas import (
    alerts,
    drift,
    experiments,
    jobs,
    keys,
    management,
    metrics,
    openai,
    predict,
    rollouts,
    server,
    shadow,
    ui,
    v2,
)
from inferd.api.schemas._operation import Media, Operation, Param

OPERATIONS: tuple[Operation, ...] = (
    *v2.OPERATIONS,
    *predict.OPERATIONS,
    *server.OPERATIONS,
    *management.OPERATIONS,
    *jobs.OPERATIONS,
    *keys.OPERATIONS,
    *experiments.OPERATIONS,
    *rollouts.OPERATIONS,
    *shadow.OPERATIONS,
    *drift.OPERATIONS,
    *alerts.OPERATIONS,
    *metrics.OPERATIONS,
    *openai.OPERATIONS,
    *ui.OPERATIONS,
)

__all__ = ["OPERATIONS", "Media", "Operation", "Param"]
