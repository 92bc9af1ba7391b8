from pathlib import Path

import pytest

from inferd.errors import (
    Conflict,
    InvalidInput,
    ModelNotFound,
    PromotionRefused,
    RegistryUnavailable,
)
from inferd.registry import Registry, Stage, Status
from inferd.registry.migrations import MIGRATIONS, current_version


@pytest.fixture
def registry(registry_url: str) -> Registry:
    reg = Registry(registry_url)
    yield reg  # type: ignore[misc]
    reg.close()


def add(reg: Registry, name: str = "m", **kw: object):  # type: ignore[no-untyped-def]
    try:
        reg.get_model(name)
    except ModelNotFound:
        reg.create_model(name, actor="alice")
    return reg.register_version(
        name, platform="onnx", artifact_uri=f"/art/{name}", digest="sha256:00", size_bytes=3,
        actor="alice", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_migrations_are_idempotent(registry_url: str) -> None:
    Registry(registry_url).close()
    reg = Registry(registry_url)
    assert current_version(reg.engine) == MIGRATIONS[-1][0]
    reg.close()


def test_register_numbers_versions_and_refuses_duplicates(registry: Registry) -> None:
    assert add(registry).version == 1
    assert add(registry).version == 2
    assert add(registry, version=10).version == 10
    assert add(registry).version == 11
    with pytest.raises(Conflict, match="version 10 exists"):
        add(registry, version=10)
    with pytest.raises(Conflict, match="exists already"):
        registry.create_model("m")


def test_metadata_search_and_unknowns(registry: Registry) -> None:
    add(registry, metadata={"metrics": {"accuracy": 0.8}, "tags": ["a"], "description": "first"})
    add(registry, metadata={"metrics": {"accuracy": 0.95}, "training": {"dataset": "d1"}})
    registry.update_model("m", tags=["vision"], description="a model")
    assert [m.name for m in registry.list_models(tag="vision")] == ["m"]
    assert registry.list_models(tag="audio") == []
    assert [v.version for v in registry.list_versions("m", metric="accuracy>=0.9")] == [2]
    assert registry.get_version("m", 2).training == {"dataset": "d1"}
    with pytest.raises(InvalidInput, match="metadata"):
        add(registry, metadata={"colour": "red"})
    with pytest.raises(ModelNotFound, match="known: m"):
        registry.get_model("other")
    with pytest.raises(ModelNotFound, match="version '9'"):
        registry.get_version("m", 9)


def test_promotion_archives_previous_atomically(registry: Registry) -> None:
    add(registry)
    add(registry, stage="staging")
    registry.promote("m", 1, actor="bob")
    assert registry.get_model("m").production_version == 1
    registry.promote("m", 2, actor="bob")
    assert registry.get_version("m", 1).stage is Stage.ARCHIVED
    assert registry.get_version("m", 2).stage is Stage.PRODUCTION
    assert [v.version for v in registry.list_versions("m", stage="production")] == [2]
    assert [m.name for m in registry.list_models(stage="production")] == ["m"]
    with pytest.raises(InvalidInput, match="stage"):
        registry.set_stage("m", 1, "canary")


def test_rollback_returns_to_previous_production(registry: Registry) -> None:
    for _ in range(3):
        add(registry)
    with pytest.raises(Conflict, match="no earlier production"):
        registry.rollback("m")
    registry.promote("m", 1)
    registry.promote("m", 3)
    assert registry.rollback("m", actor="carol").version == 1
    assert registry.get_version("m", 3).stage is Stage.ARCHIVED
    assert registry.rollback("m").version == 3


def test_gates_refuse_promotion_with_reason(registry: Registry) -> None:
    registry.create_model("g", gates=["accuracy >= 0.85"])
    add(registry, "g", metadata={"metrics": {"accuracy": 0.8}})
    add(registry, "g")
    add(registry, "g", metadata={"metrics": {"accuracy": 0.9}})
    with pytest.raises(PromotionRefused, match=r"accuracy is 0\.8"):
        registry.promote("g", 1)
    with pytest.raises(PromotionRefused, match="no metric 'accuracy'"):
        registry.promote("g", 2)
    assert registry.promote("g", 3).stage is Stage.PRODUCTION
    with pytest.raises(InvalidInput, match="gates"):
        registry.update_model("g", gates=["accuracy is great"])


def test_failed_version_cannot_be_promoted(registry: Registry) -> None:
    add(registry)
    registry.set_status("m", 1, Status.FAILED, "bad file")
    with pytest.raises(PromotionRefused, match="bad file"):
        registry.promote("m", 1)


def test_deleting_what_serves_traffic_is_refused(registry: Registry) -> None:
    add(registry)
    add(registry)
    registry.promote("m", 1)
    with pytest.raises(Conflict, match="serves production traffic"):
        registry.delete_version("m", 1)
    with pytest.raises(Conflict, match="serves production traffic"):
        registry.delete_model("m")
    registry.delete_version("m", 2)
    registry.set_stage("m", 1, "archived")
    registry.delete_model("m")
    assert registry.list_models() == []


def test_audit_log_and_revision(registry: Registry) -> None:
    start = registry.revision()
    add(registry)
    registry.promote("m", 1, actor="dave")
    assert registry.revision() > start
    entries = registry.audit("m")
    assert [e.action for e in entries] == ["stage", "register", "create_model"]
    assert (entries[0].actor, entries[0].from_value, entries[0].to_value) == (
        "dave", "registered", "production",
    )  # fmt: skip


def test_unreachable_database_is_a_clear_503(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailable) as caught:
        Registry("postgresql://nobody@127.0.0.1:1/none")
    assert caught.value.http_status == 503
