"""Alert notifications: the payload of each receiver kind, and how they are sent.

    Notifier (ABC)         send(receiver, payload); raises NotifyFailed to be retried
    ├─ WebhookNotifier     POST JSON over httpx, the receiver's timeout; 2xx is success
    └─ (tests: a fake that records or fails on purpose)

Payloads: ``webhook`` receivers get inferd's JSON (close to Alertmanager's webhook body:
``status``, ``receiver``, ``group_key``, ``group_labels``, ``alerts`` with ``fingerprint`` for
receivers that deduplicate); ``slack`` receivers get ``{"text": ...}``, which Slack incoming
webhooks and compatible chat tools (Mattermost, Rocket.Chat) accept.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from inferd.monitoring.alerts_config import Receiver
from inferd.monitoring.alerts_store import AlertRow


class NotifyFailed(Exception):
    """A delivery failed; the outbox retries it after the receiver's backoff."""


class Notifier(abc.ABC):
    """Sends one payload to one receiver (blocking; the evaluator runs it in a thread)."""

    @abc.abstractmethod
    def send(self, receiver: Receiver, payload: dict[str, Any]) -> None:
        """Deliver ``payload``.

        Raises:
            NotifyFailed: on any failure worth retrying (network error, non-2xx answer).
        """

    def close(self) -> None:  # noqa: B027 - optional hook: most notifiers hold nothing
        """Free connections."""


class WebhookNotifier(Notifier):
    """POSTs JSON payloads with httpx (one pooled client)."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(transport=transport, follow_redirects=False)

    def send(self, receiver: Receiver, payload: dict[str, Any]) -> None:
        """POST ``payload`` to the receiver's URL. Raises NotifyFailed."""
        try:
            reply = self._client.post(receiver.url, json=payload, timeout=receiver.timeout)
        except httpx.HTTPError as err:
            raise NotifyFailed(f"{type(err).__name__}: {err}") from err
        if not 200 <= reply.status_code < 300:
            raise NotifyFailed(f"HTTP {reply.status_code}: {reply.text[:200]}")

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def alert_json(alert: AlertRow) -> dict[str, Any]:
    """One alert as it appears in a webhook payload."""
    return {
        "status": "resolved" if alert.state == "resolved" else "firing",
        "rule": alert.rule,
        "kind": alert.kind,
        "severity": alert.severity,
        "labels": {"alertname": alert.rule, **alert.labels},
        "summary": alert.summary,
        "value": alert.value,
        "starts_at": _iso(alert.fired_at or alert.started_at),
        "ends_at": _iso(alert.resolved_at),
        "fingerprint": alert.fingerprint,
    }


def payload(
    receiver: Receiver, group: dict[str, str], alerts: Sequence[AlertRow]
) -> dict[str, Any]:
    """The body sent to ``receiver`` for one group of alerts that changed together."""
    status = "firing" if any(a.state == "firing" for a in alerts) else "resolved"
    if receiver.kind == "slack":
        return {"text": slack_text(status, group, alerts)}
    return {
        "version": "1",
        "status": status,
        "receiver": receiver.name,
        "group_key": group_key(group),
        "group_labels": group,
        "alerts": [alert_json(a) for a in alerts],
    }


def group_key(group: dict[str, str]) -> str:
    """A stable text key of a group's labels."""
    return ",".join(f"{k}={v}" for k, v in sorted(group.items()))


def slack_text(status: str, group: dict[str, str], alerts: Sequence[AlertRow]) -> str:
    """Slack ``text``: a headline and one line per alert (mrkdwn)."""
    firing = sum(a.state == "firing" for a in alerts)
    head = f"[{status.upper()}:{firing if status == 'firing' else len(alerts)}] {group_key(group)}"
    lines = [f"*{head}*"]
    for a in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        mark = ":white_check_mark:" if a.state == "resolved" else ":rotating_light:"
        lines.append(f"{mark} *{a.rule}* ({a.severity}) {labels}: {a.summary}")
    return "\n".join(lines)
