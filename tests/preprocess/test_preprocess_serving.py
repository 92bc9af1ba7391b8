"""Declared preprocessing online: named raw features over V2, /predict and in-process."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from fixtures.preprocess import CREDIT_YAML, ROWS, expected_features, write_credit_model

from inferd.api.app import build_app
from inferd.serving.dataplane import DataPlane
from inferd.settings import Settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    write_credit_model(tmp_path / "repo")
    app = build_app(Settings(home=tmp_path, model_repository=tmp_path / "repo"))
    assert await app.dataplane.start() == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await app.dataplane.stop()


def v2_inputs(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        {"name": "age", "datatype": "INT32", "shape": [len(rows)],
         "data": [r["age"] for r in rows]},
        {"name": "income", "datatype": "FP64", "shape": [len(rows), 1],
         "data": [r["income"] for r in rows]},
        {"name": "country", "datatype": "BYTES", "shape": [len(rows)],
         "data": [r["country"] for r in rows]},
    ]  # fmt: skip


async def test_v2_infer_with_one_input_per_raw_column(client: httpx.AsyncClient) -> None:
    rows = [ROWS[0], ROWS[2]]  # V2 JSON has no null: the rows with every value
    r = await client.post("/v2/models/credit/infer", json={"inputs": v2_inputs(rows)})
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["shape"] == [2, 5]
    np.testing.assert_allclose(np.reshape(out["data"], (2, 5)), expected_features(rows),
                               rtol=1e-6)  # fmt: skip


async def test_predict_instances_and_input_data_give_the_same_features(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/predict", json={"model_name": "credit", "instances": ROWS})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"]["y"], expected_features(), rtol=1e-6)
    rows = [ROWS[0], ROWS[2]]
    columns = {k: [r[k] for r in rows] for k in ("age", "income", "country")}
    r = await client.post("/predict", json={"model_name": "credit", "input_data": columns})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"]["y"], expected_features(rows), rtol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"country": "XX"}, "preprocessing: feature 'country': one_hot: unknown category 'XX', "
         "expected one of ['DE', 'FR']"),
        ({"income": "lots"}, "preprocessing: feature 'log_income': expected numbers in column "
         "'income', got text"),
        ({"country": None}, "preprocessing: feature 'country': one_hot: missing value in row 1; "
         "declare impute to fill it"),
        ({"extra": 1}, "preprocessing: inputs: unknown input 'extra', expected the raw columns "
         "['age', 'income', 'country']"),
    ],
)  # fmt: skip
async def test_refused_rows_are_400_naming_feature_and_rule(
    client: httpx.AsyncClient, change: dict[str, object], message: str
) -> None:
    rows = [{**ROWS[0], **change}, {**ROWS[2], **change}] if "income" in change else [
        ROWS[0], {**ROWS[2], **change},
    ]  # fmt: skip
    r = await client.post("/predict", json={"model_name": "credit", "instances": rows})
    assert r.status_code == 400
    assert r.json() == {"error": message}


async def test_missing_column_over_v2_is_400(client: httpx.AsyncClient) -> None:
    inputs = v2_inputs([ROWS[0]])[:2]
    r = await client.post("/v2/models/credit/infer", json={"inputs": inputs})
    assert r.status_code == 400
    assert "missing ['country'], expected the raw columns" in r.json()["error"]


async def test_metadata_lists_the_raw_columns(client: httpx.AsyncClient) -> None:
    meta = (await client.get("/v2/models/credit")).json()
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "income", "datatype": "FP64", "shape": [-1]},
        {"name": "country", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 5]}]


async def test_block_that_does_not_fit_the_model_fails_its_load(tmp_path: Path) -> None:
    write_credit_model(tmp_path / "repo", CREDIT_YAML.replace("[-1, 5]", "[-1, 4]"))
    write_credit_model(tmp_path / "repo", CREDIT_YAML.replace("log1p(income)", "income.real"),
                       name="syntax")  # fmt: skip
    settings = Settings(home=tmp_path, model_repository=tmp_path / "repo")
    plane: DataPlane = build_app(settings).dataplane
    problems = await plane.start()
    await plane.stop()
    assert problems["credit/1"].endswith(
        "model 'credit' version 1: field 'preprocessing.features': 5 feature columns declared "
        "but model input 'x' has shape [-1, 4]; expected [-1, 5]"
    )
    assert "field 'preprocessing.features.1.expr'" in problems["syntax"]
    assert "Attribute is not allowed" in problems["syntax"]


def test_rows_fixture_is_what_the_wire_carries() -> None:
    assert orjson.loads(orjson.dumps(ROWS)) == ROWS


SUM_PY = """\
from inferd.runtimes.python import PythonModel


class Sum(PythonModel):
    def infer(self, inputs):
        return {"y": inputs["x"].sum(axis=1)}
"""


async def test_explanations_are_over_the_declared_features(tmp_path: Path) -> None:
    yaml = CREDIT_YAML.replace("{name: y, datatype: FP32, shape: [-1, 5]}",
                               "{name: y, datatype: FP32, shape: [-1]}")  # fmt: skip
    folder = write_credit_model(tmp_path / "repo", yaml)
    (folder / "1" / "model.py").write_text(SUM_PY)
    app = build_app(Settings(home=tmp_path, model_repository=tmp_path / "repo"))
    assert await app.dataplane.start() == {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.post("/v2/models/credit/explain", json={"inputs": v2_inputs([ROWS[0]])})
    finally:
        await app.dataplane.stop()
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["attributions"]["shape"] == [1, 5]
    score = expected_features([ROWS[0]]).sum()
    total = sum(outputs["attributions"]["data"]) + outputs["base_value"]["data"][0]
    assert total == pytest.approx(score, abs=1e-5)
