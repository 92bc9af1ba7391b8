"""Webhook delivery over httpx (a mock transport at the network boundary) and the payloads."""

from __future__ import annotations

import json

import httpx
import pytest

from inferd.monitoring.alerts_config import Receiver
from inferd.monitoring.alerts_notify import NotifyFailed, WebhookNotifier, payload
from inferd.monitoring.alerts_store import AlertRow


def _alert(state: str, version: str = "1") -> AlertRow:
    return AlertRow(1, "f" * 32, "HighP99Latency", "latency_p99", "critical", state,
                    {"model": "linear", "version": version}, "p99 is 600 ms", 0.6, 100.0, 110.0,
                    200.0 if state == "resolved" else None, None)  # fmt: skip


def test_webhook_posts_json_and_fails_on_non_2xx() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200 if request.url.path == "/ok" else 503, text="busy")

    notifier = WebhookNotifier(httpx.MockTransport(answer))
    notifier.send(Receiver(name="a", url="http://hooks.test/ok"), {"x": 1})
    assert seen == [("http://hooks.test/ok", {"x": 1})]
    with pytest.raises(NotifyFailed, match="HTTP 503: busy"):
        notifier.send(Receiver(name="b", url="http://hooks.test/down"), {"x": 2})
    notifier.close()


def test_network_errors_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    notifier = WebhookNotifier(httpx.MockTransport(refuse))
    with pytest.raises(NotifyFailed, match="ConnectError: refused"):
        notifier.send(Receiver(name="a", url="http://hooks.test/"), {})


def test_generic_payload() -> None:
    body = payload(Receiver(name="ops", url="http://h/"), {"rule": "HighP99Latency"},
                   [_alert("firing"), _alert("resolved", "2")])  # fmt: skip
    assert body["status"] == "firing"  # one of the group still fires
    assert body["group_key"] == "rule=HighP99Latency"
    assert [a["status"] for a in body["alerts"]] == ["firing", "resolved"]
    first = body["alerts"][0]
    assert first["labels"] == {"alertname": "HighP99Latency", "model": "linear", "version": "1"}
    assert first["starts_at"] == "1970-01-01T00:01:50+00:00"
    assert first["ends_at"] is None
    assert first["fingerprint"] == "f" * 32


def test_slack_payload() -> None:
    receiver = Receiver(name="chat", kind="slack", url="http://h/")
    firing = payload(receiver, {"rule": "HighP99Latency"}, [_alert("firing")])
    assert set(firing) == {"text"}
    assert firing["text"].startswith("*[FIRING:1] rule=HighP99Latency*")
    assert "model=linear, version=1: p99 is 600 ms" in firing["text"]
    resolved = payload(receiver, {"rule": "HighP99Latency"}, [_alert("resolved")])
    assert resolved["text"].startswith("*[RESOLVED:1]")
