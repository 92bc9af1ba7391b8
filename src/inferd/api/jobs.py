"""REST endpoints of batch jobs, under ``/v1/jobs``.

GET   /v1/jobs[?state=&limit=]       list jobs, newest first
POST  /v1/jobs                       submit {"model", "inputs", "output", ...} -> 201
GET   /v1/jobs/{id}                  state, rows total/done/failed, rows/s, ETA, output, error
POST  /v1/jobs/{id}/cancel           cancel (a running job stops after its current chunk)
POST  /v1/jobs/{id}/resume           queue a failed or cancelled job again
"""

from __future__ import annotations

import asyncio
from typing import Any

from inferd.api._request import json_object, query_limit
from inferd.errors import ModelNotFound, require_method
from inferd.jobs import JobService

Reply = tuple[int, Any]


class JobRoutes:
    """Dispatches ``/v1/jobs...`` to the job service (blocking calls run in a thread)."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    async def handle(
        self, method: str, parts: list[str], query: dict[str, str], body: bytes, actor: str
    ) -> Reply:
        """Answer one request; ``parts`` is the path after ``/v1/jobs``."""
        service = self.service
        if not parts:
            if method == "GET":
                limit = query_limit(query)
                jobs = await asyncio.to_thread(service.list_jobs, query.get("state"), limit)
                return 200, [job.to_dict() for job in jobs]
            require_method(method, "POST", listed="GET, POST")
            return 201, (
                await asyncio.to_thread(service.submit, json_object(body, required=True), actor)
            ).to_dict()
        job_id, action = parts[0], parts[1:]
        if not action:
            require_method(method, "GET", listed="GET")
            return 200, (await asyncio.to_thread(service.get, job_id)).to_dict()
        if action == ["cancel"]:
            require_method(method, "POST", listed="POST")
            return 200, (await asyncio.to_thread(service.cancel, job_id)).to_dict()
        if action == ["resume"]:
            require_method(method, "POST", listed="POST")
            return 200, (await asyncio.to_thread(service.resume, job_id)).to_dict()
        raise ModelNotFound("/v1/jobs/" + "/".join(parts))
