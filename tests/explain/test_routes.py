"""``POST /v2/models/{m}/explain`` and ``explain: true`` in-process, with their errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from fixtures.models import build_xgboost_classifier, classification_data

from inferd.api.app import build_app
from inferd.explain.base import NotExplainable
from inferd.explain.reference import tabular_input
from inferd.security.policy import Group, classify_http
from inferd.settings import Settings
from inferd.types import Signature, TensorSpec


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    x, y = classification_data(rows=200)
    build_xgboost_classifier(repo / "boost" / "1" / "model.json", x, y, trees=5)
    (repo / "boost" / "model.yaml").write_text("platform: xgboost\n")
    app = build_app(Settings(home=tmp_path, model_repository=repo))
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.dataplane.stop()


def body(values: list[float], **parameters: object) -> dict[str, object]:
    tensor = {"name": "x", "shape": [len(values)], "datatype": "FP32", "data": values}
    return {"id": "e1", "inputs": [tensor], "parameters": parameters}


def outputs(response: httpx.Response) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text
    return {
        o["name"]: np.asarray(o["data"], dtype=np.float64).reshape(o["shape"])
        for o in response.json()["outputs"]
    }


async def test_explain_route_and_parameter_answer_alike(client: httpx.AsyncClient) -> None:
    routed = await client.post("/v2/models/linear/versions/2/explain", json=body([1, 2, 4]))
    flagged = await client.post(
        "/v2/models/linear/versions/2/infer", json=body([1, 2, 4], explain=True)
    )
    assert routed.json() == flagged.json()
    found = outputs(routed)  # y = 3x + 1 against x = 0: 3x and the base value 1
    np.testing.assert_allclose(found["attributions"], [[3.0], [6.0], [12.0]])
    np.testing.assert_allclose(found["base_value"], [1.0, 1.0, 1.0])
    answer = routed.json()
    assert answer["id"] == "e1"
    assert answer["model_version"] == "2"
    assert answer["parameters"]["explainer"] == "kernel_shap"
    assert answer["parameters"]["explained"] == "y"
    assert routed.headers["x-model-version"] == "2"


async def test_a_served_booster_explains_its_margin_exactly(client: httpx.AsyncClient) -> None:
    x = classification_data(rows=4, seed=1)[0].astype(np.float32)
    tensor = {"name": "x", "shape": [4, 6], "datatype": "FP32", "data": x.ravel().tolist()}
    found = outputs(await client.post("/v2/models/boost/explain", json={"inputs": [tensor]}))
    assert found["attributions"].shape == (4, 3, 6)
    margin = outputs(await client.post("/v2/models/boost/infer", json={"inputs": [tensor]}))[
        "margin"
    ]
    np.testing.assert_allclose(
        found["attributions"].sum(axis=-1) + found["base_value"], margin, atol=1e-5
    )


async def test_the_mlp_gets_bounded_kernel_attributions_that_add_up(
    client: httpx.AsyncClient,
) -> None:
    x = np.random.default_rng(0).standard_normal((2, 256)).astype(np.float32)
    tensor = {"name": "x", "shape": [2, 256], "datatype": "FP32", "data": x.ravel().tolist()}
    request = {"inputs": [tensor], "parameters": {"explain_seed": 5}}
    response = await client.post("/v2/models/mlp/explain", json=request)
    found = outputs(response)
    assert found["attributions"].shape == (2, 10, 256)  # [rows, outputs, features]
    assert found["base_value"].shape == (2, 10)
    infer = await client.post("/v2/models/mlp/infer", json={"inputs": [tensor]})
    y = outputs(infer)["y"]
    np.testing.assert_allclose(
        found["attributions"].sum(axis=-1) + found["base_value"], y, atol=1e-4
    )
    assert response.json()["parameters"]["complete"] is False
    again = await client.post("/v2/models/mlp/explain", json=request)
    assert again.json()["outputs"] == response.json()["outputs"]


async def test_binary_outputs_are_honoured(client: httpx.AsyncClient) -> None:
    request = body([1, 2], binary_data_output=True)
    response = await client.post(
        "/v2/models/linear/versions/1/explain", content=orjson.dumps(request)
    )
    assert response.status_code == 200, response.text
    header = int(response.headers["inference-header-content-length"])
    described = orjson.loads(response.content[:header])["outputs"]
    assert [o["name"] for o in described] == ["attributions", "base_value"]
    data = np.frombuffer(response.content[header : header + 16], dtype=np.float64)
    np.testing.assert_allclose(data, [2.0, 4.0])


@pytest.mark.parametrize(
    ("parameters", "values", "fragment"),
    [
        ({"explain": "yes"}, [1.0], "parameters.explain: expected true or false, got 'yes'"),
        ({"explain_seed": -1}, [1.0], "parameters.explain_seed: expected a non-negative integer"),
        (
            {"explain_baseline": [1, 2]},
            [1.0],
            "parameters.explain_baseline: expected a list of 1 numbers",
        ),
        ({"explain_output": "z"}, [1.0], "parameters.explain_output: expected one of ['y']"),
        (
            {},
            [1.0] * 17,
            "input 'x': expected at most 16 rows per kernel_shap explanation, got 17 rows",
        ),
        ({}, [], "input 'x': expected at least one row, got 0 rows"),
    ],
)
async def test_bad_requests_get_400_naming_what_and_where(
    client: httpx.AsyncClient, parameters: dict[str, object], values: list[float], fragment: str
) -> None:
    response = await client.post(
        "/v2/models/linear/infer", json=body(values, **{"explain": True, **parameters})
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]


async def test_unknown_models_and_wrong_methods(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v2/models/nope/explain", json=body([1.0]))).status_code == 404
    assert (await client.get("/v2/models/linear/explain")).status_code == 405


def test_a_non_tabular_model_is_refused_by_name() -> None:
    images = Signature(
        (TensorSpec("image", "FP32", (-1, 3, 8, 8)),), (TensorSpec("y", "FP32", (-1, 10)),)
    )
    with pytest.raises(NotExplainable) as info:
        tabular_input("vision", "1", images)
    assert info.value.http_status == 400
    assert (
        "one numeric input of shape [rows, features] (tabular), got inputs image FP32 [-1, 3, 8, 8]"
        in str(info.value)
    )
    text = Signature((TensorSpec("text", "BYTES", (-1,)),), ())
    with pytest.raises(NotExplainable, match="got inputs text BYTES"):
        tabular_input("nlp", "1", text)


@pytest.mark.parametrize("path", ["/v2/models/m/explain", "/v2/models/m/versions/3/explain"])
def test_explaining_needs_the_predict_role_like_infer(path: str) -> None:
    assert classify_http(path) == (Group.INFER, "m")
    assert classify_http(path.replace("explain", "infer")) == classify_http(path)
