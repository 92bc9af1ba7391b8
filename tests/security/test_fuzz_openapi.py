"""Schemathesis fuzzes a real `inferd serve` from its own OpenAPI document (/openapi.json):
every operation, with bodies, paths, queries and headers both valid and invalid for the
schema. No 5xx, a JSON error for every refusal, answers and statuses as documented,
schema-invalid input refused, 405 with the right ``Allow`` for undeclared methods.
``INFERD_FUZZ_EXAMPLES_PER_OPERATION`` sets the cases per operation (``make fuzz``: more).

Two operations are left out on purpose: ``POST /v1/jobs`` and ``POST
/v1/models/{model_name}/versions`` act on arbitrary file paths and URIs an admin gives them
(a job writes its output folder, a registration hashes the artifact). Their bodies are
fuzzed by tests/jobs and tests/registry with invalid values only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import schemathesis
from fixtures.servers import Server
from hypothesis import HealthCheck, settings

from inferd.api.openapi import openapi_document
from inferd.serving.examples import build_linear_onnx

EXAMPLES = int(os.environ.get("INFERD_FUZZ_EXAMPLES_PER_OPERATION", "40"))
# The suite runs the same cases every time (a CI run must not fail on a case no one saw
# before); `make fuzz` sets INFERD_FUZZ_RANDOM=1 to explore new ones.
RANDOM = os.environ.get("INFERD_FUZZ_RANDOM") == "1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("openapi-fuzz")
    repo = home / "repo"
    shutil.copytree(examples_dir, repo)
    build_linear_onnx(repo / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    server = Server(repo, home)
    try:
        server.wait_ready()
        served = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        assert served == orjson.loads(orjson.dumps(openapi_document()))  # what is fuzzed is served
        yield server.url
        assert server.proc.poll() is None, server.output()  # never taken down
    finally:
        server.stop()


# The document is built in-process, so the cases exist at collection time.
schema = (
    schemathesis.openapi.from_dict(openapi_document())
    .exclude(method="POST", path="/v1/jobs")
    .exclude(method="POST", path="/v1/models/{model_name}/versions")
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_api_from_its_openapi_document(case: schemathesis.Case, server_url: str) -> None:
    # Every default check but positive_data_acceptance: a body can fit the generic schema
    # and still not fit the model (V2 inputs are per model), so a 400 there is right.
    case.call_and_validate(
        base_url=server_url, timeout=15,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )  # fmt: skip
