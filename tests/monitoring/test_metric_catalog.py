"""docs/metrics.md against what /metrics exports after traffic: no undocumented inferd_
family, no documented family missing, types and labels alike.

Two serving processes are scraped: the app in-process with a fake NVML (so the ``gpu`` rows
are required too), and a real ``inferd serve --workers 2`` (multiprocess value files).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fixtures.nvml import FakeNvml
from fixtures.servers import Server
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from inferd.api.app import build_app
from inferd.monitoring.metrics import Metrics
from inferd.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
DOC_NAME = "docs/metrics.md"
ROW = re.compile(
    r"^\|\s*`(?P<name>inferd_\w+)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|"
    r"\s*(?P<when>[\w-]+)\s*\|(?P<meaning>.*)\|\s*$"
)
TYPES = {"counter", "gauge", "histogram"}
V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}


@dataclass(frozen=True)
class Family:
    type: str
    labels: frozenset[str] | None  # None: declared, no series yet (labels unknown)


def documented() -> dict[str, tuple[Family, str]]:
    """name -> (type and labels, when) from the doc's tables."""
    rows: dict[str, tuple[Family, str]] = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        labels = frozenset(x.strip() for x in match["labels"].split(",") if x.strip())
        rows[match["name"]] = (Family(match["type"], labels), match["when"])
    return rows


def exported(text: str) -> dict[str, Family]:
    """name as queried -> type and labels, for every inferd_ family in an exposition."""
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families}
    found: dict[str, Family] = {}
    for family in families:
        if not family.name.startswith("inferd_"):
            continue
        if family.name.endswith("_created") and family.name[: -len("_created")] in names:
            continue  # a counter's or histogram's creation time, read back as its own family
        name = family.name + "_total" if family.type == "counter" else family.name
        keys = {k for s in family.samples for k in s.labels if k != "le"}
        found[name] = Family(family.type, frozenset(keys) if family.samples else None)
    return found


def problems(text: str, required: set[str], where: str) -> list[str]:
    """Every way the doc and the exposition differ, each naming the metric and the side."""
    doc = documented()
    live = exported(text)
    out = []
    for name, family in sorted(live.items()):
        if name not in doc:
            labels = ", ".join(sorted(family.labels or ()))
            out.append(
                f"{name}: exported by /metrics of {where} but missing from {DOC_NAME}; "
                f"add a row: | `{name}` | {family.type} | {labels} | <when> | <meaning> |"
            )
            continue  # fmt: skip
        want = doc[name][0]
        if want.type != family.type:
            out.append(f"{name}: {DOC_NAME} says {want.type}, /metrics of {where} says "
                       f"{family.type}")  # fmt: skip
        if family.labels is not None and want.labels != family.labels:
            out.append(f"{name}: labels in {DOC_NAME} {sorted(want.labels)}, in /metrics of "
                       f"{where} {sorted(family.labels)}")  # fmt: skip
    for name in sorted(required - set(live)):
        out.append(f"{name}: documented in {DOC_NAME} (when: {doc[name][1]}) but missing "
                   f"from /metrics of {where}")  # fmt: skip
    return out


def required(*whens: str) -> set[str]:
    return {name for name, (_, when) in documented().items() if when in whens}


def test_the_doc_parses() -> None:
    rows = documented()
    assert len(rows) >= 20, f"only {len(rows)} rows parsed from {DOC}: the table format changed?"
    for name, (family, when) in rows.items():
        assert family.type in TYPES, f"{name}: type {family.type!r}, expected one of {TYPES}"
        assert when, f"{name}: no 'when'"
        if family.type == "counter":
            assert name.endswith("_total"), f"{name}: counters are listed with _total"


async def _traffic(client: httpx.AsyncClient) -> None:
    """Answered and refused requests, an unload and a load."""
    for version in ("1", "2"):
        r = await client.post(f"/v2/models/linear/versions/{version}/infer", json=V2_BODY)
        assert r.status_code == 200, r.text
    assert (await client.post("/v2/models/linear/infer", content=b"{")).status_code == 400
    assert (await client.post("/v2/models/nope/infer", json=V2_BODY)).status_code == 404
    assert (await client.post("/v2/repository/models/mlp/unload")).status_code == 200
    assert (await client.post("/v2/repository/models/mlp/load")).status_code == 200


async def test_in_process_app_with_a_gpu_matches_the_doc(repo: Path, tmp_path: Path) -> None:
    nvml = FakeNvml([{"busy": 12, "used": 1 << 30, "total": 8 << 30}])
    metrics = Metrics(CollectorRegistry(), load_nvml=lambda: nvml)
    app = build_app(Settings(home=tmp_path, model_repository=repo), metrics)
    assert await app.dataplane.start() == {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await _traffic(client)
            text = (await client.get("/metrics")).text
    finally:
        await app.dataplane.stop()
    found = problems(text, required("always", "gpu"), "the app with a fake GPU")
    assert not found, "\n".join(found)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, examples_dir: Path) -> Iterator[Server]:
    import shutil

    from inferd.serving.examples import build_linear_onnx

    home = tmp_path_factory.mktemp("catalog")
    root = home / "repo"
    shutil.copytree(examples_dir, root)
    build_linear_onnx(root / "linear" / "2" / "model.onnx", a=3.0, b=1.0)
    config = root / "linear" / "model.yaml"
    config.write_text(config.read_text() + "version_policy: all\n")
    with Server(root, home, workers=2) as server:
        yield server


async def test_two_workers_match_the_doc(two_workers: Server) -> None:
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=30) as client:
        await _traffic(client)
        text = (await client.get("/metrics")).text
    found = problems(text, required("always"), "inferd serve --workers 2")
    assert not found, "\n".join(found)
