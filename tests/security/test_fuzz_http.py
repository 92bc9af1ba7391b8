"""Property-based fuzzing of the HTTP API: whatever comes in, no 5xx and no crash.

The suite runs a bounded number of cases; ``make fuzz`` runs many more
(``INFERD_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferd.api.app import build_app
from inferd.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
EXAMPLES = int(os.environ.get("INFERD_FUZZ_EXAMPLES", "2000"))
# The suite replays the same cases every run (no flaky CI); `make fuzz` explores new ones.
RANDOM = os.environ.get("INFERD_FUZZ_RANDOM") == "1"
DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES", "X"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
shapes = st.lists(st.integers(-3, 2**64), max_size=5) | json_values
tensor = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "", "y"]) | json_values,
     "shape": shapes, "datatype": st.sampled_from(DATATYPES) | json_values},
    optional={
        "data": st.lists(scalars, max_size=6) | st.lists(st.lists(scalars, max_size=3), max_size=3)
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-2, 64) | json_values}
        ),
    },
)  # fmt: skip
v2_body = st.fixed_dictionaries(
    {"inputs": st.lists(tensor, max_size=3) | json_values},
    optional={"id": json_values, "parameters": json_values, "outputs": json_values},
)
predict_body = st.fixed_dictionaries(
    {"model_name": st.sampled_from(["linear", "mlp", "nope"]) | json_values,
     "input_data": st.dictionaries(st.sampled_from(["x", "z"]), json_values, max_size=2)
     | json_values},
    optional={"model_version": json_values, "user_id": json_values, "parameters": json_values},
)  # fmt: skip
paths = st.sampled_from([
    "/v2/models/linear/infer", "/v2/models/mlp/infer", "/v2/models/linear/versions/1/infer",
    "/v2/models/nope/infer", "/predict", "/v2/models/linear", "/v2/repository/index",
    "/v1/models", "/v1/keys", "/v1/models/linear/versions", "/metrics", "/v2/health/ready",
]) | st.text(alphabet="/abcv12%.", max_size=30).map(
    # httpx refuses a relative URL starting with "//" (it would be a host): one leading slash.
    lambda p: "/" + p.lstrip("/")
)  # fmt: skip
headers = st.fixed_dictionaries(
    {},
    optional={
        "x-api-key": st.sampled_from([ADMIN, "", "inferd_x_y"]),
        "inference-header-content-length": st.integers(-5, 400).map(str)
        | st.text(alphabet="0123456789-x ", max_size=4),
    },
)


def _encode(body: Any, raw_tail: bytes) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) + raw_tail


def test_http_api_never_answers_5xx(repo: Path, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    app = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    assert loop.run_until_complete(app.dataplane.start()) == {}
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://t")

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
        path=paths,
        body=v2_body | predict_body | json_values,
        tail=st.binary(max_size=32),
        extra=headers,
    )
    def one(method: str, path: str, body: Any, tail: bytes, extra: dict[str, str]) -> None:
        try:
            content = _encode(body, tail)
        except (TypeError, orjson.JSONEncodeError):
            content = tail
        request = client.request(method, path, content=content, headers=extra)
        response = loop.run_until_complete(request)
        assert response.status_code < 500, (method, path, content[:200], response.text)
        if response.status_code >= 400:
            assert "error" in response.json()

    try:
        one()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(app.dataplane.stop())
        loop.close()
