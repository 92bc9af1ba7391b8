"""REST endpoints of batch jobs, under ``/v1/jobs``.

GET   /v1/jobs[?state=&limit=]       list jobs, newest first
POST  /v1/jobs                       submit {"model", "inputs", "output", ...} -> 201
GET   /v1/jobs/{id}                  state, rows total/done/failed, rows/s, ETA, output, error
POST  /v1/jobs/{id}/cancel           cancel (a running job stops after its current chunk)
POST  /v1/jobs/{id}/resume           queue a failed or cancelled job again
POST  /v1/jobs/{id}/publish          {"key", "store"?, "max_age"?, ...}: the output becomes its
                                     version's precomputed table -> 201 (inferd.jobs.publish)
GET   /v1/jobs/{id}/publish          the table published from the job: state, rows, age
DELETE /v1/jobs/{id}/publish         remove it (the version answers online again)
"""

from __future__ import annotations

import asyncio
from typing import Any

from inferd.api._request import json_object, query_limit
from inferd.errors import ModelNotFound, require_method
from inferd.jobs import JobService
from inferd.jobs.publish import Publisher

Reply = tuple[int, Any]


class JobRoutes:
    """Dispatches ``/v1/jobs...`` to the job service (blocking calls run in a thread).

    Args:
        service: the job service.
        redis_url: where tables published with ``store: redis`` go (``--cache-redis-url``).
    """

    def __init__(self, service: JobService, redis_url: str | None = None) -> None:
        self.service = service
        self.publisher = Publisher(service.registry, redis_url)

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
        if action == ["publish"]:
            return await self._publish(method, job_id, body, actor)
        raise ModelNotFound("/v1/jobs/" + "/".join(parts))

    async def _publish(self, method: str, job_id: str, body: bytes, actor: str) -> Reply:
        publisher = self.publisher
        if method == "GET":
            return 200, (await asyncio.to_thread(publisher.status, job_id)).to_dict()
        if method == "DELETE":
            return 200, (await asyncio.to_thread(publisher.unpublish, job_id, actor)).to_dict()
        require_method(method, "POST", listed="GET, POST, DELETE")
        data = json_object(body, required=True)
        return 201, (await asyncio.to_thread(publisher.publish, job_id, data, actor)).to_dict()
