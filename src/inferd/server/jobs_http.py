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

import orjson

from inferd.errors import InvalidInput, ModelNotFound
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
                limit = _limit(query.get("limit", "100"))
                jobs = await asyncio.to_thread(service.list_jobs, query.get("state"), limit)
                return 200, [job.to_dict() for job in jobs]
            _allow(method, "GET, POST", "POST")
            return 201, (await asyncio.to_thread(service.submit, _body(body), actor)).to_dict()
        job_id, action = parts[0], parts[1:]
        if not action:
            _allow(method, "GET", "GET")
            return 200, (await asyncio.to_thread(service.get, job_id)).to_dict()
        if action == ["cancel"]:
            _allow(method, "POST", "POST")
            return 200, (await asyncio.to_thread(service.cancel, job_id)).to_dict()
        if action == ["resume"]:
            _allow(method, "POST", "POST")
            return 200, (await asyncio.to_thread(service.resume, job_id)).to_dict()
        raise ModelNotFound("/v1/jobs/" + "/".join(parts))


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as err:
        raise InvalidInput("body", "a JSON object", f"invalid JSON ({err})") from None


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput("limit", "a positive integer", repr(text))
    return int(text)


def _allow(method: str, allowed: str, expected: str) -> None:
    if method != expected:
        raise MethodNotAllowed(method, allowed)


class MethodNotAllowed(InvalidInput):
    """405 with the allowed methods."""

    http_status = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self, method: str, allowed: str) -> None:
        super().__init__("method", allowed, method)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"allow": self.allowed}
