"""The SDK's typed management calls against a real `inferd serve`: registry, jobs, keys."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fixtures.servers import Server

from inferd.client import AsyncClient, Client, ClientError

pytestmark = pytest.mark.slow
X = {"x": np.array([1.0, 2.0], dtype=np.float32)}


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(repo, tmp_path) as srv:
        yield srv


def test_registry_lifecycle_through_the_sdk(server: Server, repo: Path, tmp_path: Path) -> None:
    with Client(server.url) as client:
        assert [m["name"] for m in client.list_models()] == ["linear", "mlp"]
        assert [m["name"] for m in client.list_models(query="lin")] == ["linear"]
        model = client.get_model("linear")
        assert model["production_version"] is None  # the folder import promotes nothing
        assert [(v["version"], v["served"]) for v in model["versions"]] == [
            (1, "READY"), (2, "READY"),
        ]  # fmt: skip
        assert client.infer("linear", X)["y"].tolist() == [4.0, 7.0]  # highest ready: v2

        assert client.promote("linear", 2)["stage"] == "production"
        assert client.promote("linear", 1)["stage"] == "production"
        assert client.infer("linear", X)["y"].tolist() == [3.0, 5.0]  # swapped before answering
        assert client.rollback("linear")["version"] == 2
        assert client.infer("linear", X)["y"].tolist() == [4.0, 7.0]

        updated = client.update_model("linear", description="y = ax + 1", gates=["r2 >= 0.5"])
        assert (updated["description"], updated["gates"]) == ("y = ax + 1", ["r2 >= 0.5"])
        artifact = tmp_path / "v3.onnx"
        shutil.copy(repo / "linear" / "1" / "model.onnx", artifact)
        third = client.register_version("linear", str(artifact), metadata={"metrics": {"r2": 0.4}})
        assert (third["version"], third["stage"]) == (3, "registered")
        with pytest.raises(ClientError) as info:
            client.promote("linear", 3)  # the gate refuses r2 = 0.4
        assert info.value.status == 409
        assert "r2" in str(info.value)
        assert client.update_version("linear", 3, metrics={"r2": 0.9})["metrics"] == {"r2": 0.9}
        assert client.set_stage("linear", 3, "staging")["stage"] == "staging"
        assert [v["version"] for v in client.list_versions("linear", stage="staging")] == [3]
        assert client.get_version("linear", 3)["digest"].startswith("sha256:")
        client.set_stage("linear", 3, "archived")
        client.delete_version("linear", 3)
        assert [v["version"] for v in client.list_versions("linear")] == [1, 2]
        actions = [e["action"] for e in client.audit("linear", limit=50)]
        assert {"stage", "rollback", "update_model", "register", "delete_version"} <= set(actions)
        assert client.audit(limit=1)[0]["model"] == "linear"
        with pytest.raises(ClientError) as info:
            client.get_model("nope")
        assert info.value.status == 404


def test_jobs_and_keys_through_the_sdk(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,x\n" + "\n".join(f"u{i},{float(i)}" for i in range(100)) + "\n")
    spec = {"model": "linear", "version": 1, "inputs": [str(source)], "passthrough": ["id"],
            "output": str(tmp_path / "out"), "output_format": "jsonl"}  # fmt: skip
    with Client(server.url) as client:
        job = client.submit_job(spec)
        assert job["state"] == "queued"
        done = client.wait_for_job(job["id"], timeout=60, poll=0.1)
        assert (done["state"], done["rows_done"], done["rows_failed"]) == ("succeeded", 100, 0)
        assert [j["id"] for j in client.list_jobs(state="succeeded")] == [job["id"]]
        assert client.get_job(job["id"])["output_uri"]
        table = client.publish_job(job["id"], "id", max_age="1h")
        assert (table["state"], table["rows"], table["max_age_s"]) == ("active", 100, 3600.0)
        assert client.published_table(job["id"])["id"] == table["id"]
        assert client.unpublish_job(job["id"])["state"] == "deleted"
        with pytest.raises(ClientError) as info:
            client.publish_job(job["id"], "user_id")
        assert info.value.status == 400
        with pytest.raises(ClientError) as info:
            client.submit_job({"model": "linear"})
        assert info.value.status == 400

        created = client.create_key("predict", models=["linear"], name="ci")
        assert created["key"].startswith(f"inferd_{created['id']}_")
        assert [k["id"] for k in client.list_keys()] == [created["id"]]
        assert client.revoke_key(created["id"])["revoked_at"]
        assert client.list_keys() == []
        assert [k["id"] for k in client.list_keys(revoked=True)] == [created["id"]]
    with Client(f"grpc://127.0.0.1:{server.grpc_port}") as grpc_client:
        with pytest.raises(ClientError) as info:
            grpc_client.list_models()
        assert info.value.code == "UNIMPLEMENTED"


async def test_async_client_management(server: Server) -> None:
    async with AsyncClient(server.url) as client:
        assert [m["name"] for m in await client.list_models()] == ["linear", "mlp"]
        await client.promote("linear", 2)
        assert (await client.promote("linear", 1))["version"] == 1
        assert (await client.get_model("linear"))["production_version"] == 1
        assert (await client.rollback("linear"))["version"] == 2
        assert (await client.audit("linear"))[0]["action"] == "rollback"
        assert await client.list_jobs() == []
