"""`type: pagerduty`: PagerDuty Events API v2 (`trigger`, `acknowledge`, `resolve`).

Every event about an incident carries `dedup_key` = the incident's dedup key, so PagerDuty
keeps one alert per incident: a repeated trigger only adds a log entry to it.

Severity: P0 → `critical`, P1 → `error`, P2 → `warning`, and untriaged → `warning` too: an
untriaged incident is a person's report nobody ranked yet, so it is sent no quieter than
the lowest rank (PagerDuty rules often drop or mute `info`).

A paged person's own `pagerduty` routing key (their service) replaces the configured
one. PagerDuty scopes a dedup key to its routing key, and drops an acknowledge or resolve
sent with another one, so the keys each incident was triggered with are kept in the
state store (`pagerduty:<notifier>:<incident id>`), and acknowledge and resolve go to
every one of them. Handoff summaries are not sent: they are not incidents.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import structlog
from pydantic import Field, SecretStr

from monitor.core.model import Severity
from monitor.notifiers.base import (
    INCIDENT_LIFECYCLE,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    headline,
    post,
)

__all__ = ["PagerDutyConfig", "PagerDutyNotifier", "dedup_key"]

log = structlog.stdlib.get_logger(__name__)

SEVERITY = {Severity.P0: "critical", Severity.P1: "error", Severity.P2: "warning"}
UNTRIAGED = "warning"
_ACTION = {NotificationEvent.ACKNOWLEDGE: "acknowledge", NotificationEvent.RESOLVE: "resolve"}
_SUMMARY_MAX = 1024
_DEDUP_MAX = 255


class PagerDutyConfig(NotifierConfigBase):
    type: Literal["pagerduty"]
    routing_key: SecretStr  # the integration key of an Events API v2 integration
    url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://\S+$")
    source: str = Field(
        default="project-asset-monitor", min_length=1, description="`payload.source`"
    )


def dedup_key(n: Notification) -> str:
    """The incident's dedup key (a notification about no incident: its idempotency key),
    hashed when longer than PagerDuty's 255 characters."""
    key = n.dedup_key or n.idempotency_key
    if len(key) <= _DEDUP_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _summary(n: Notification) -> str:
    text = " ".join(n.text.split())
    summary = f"{headline(n)}: {text}" if text else headline(n)
    if n.drill:
        summary = "DRILL: " + summary.removeprefix("DRILL ")
    return summary if len(summary) <= _SUMMARY_MAX else summary[: _SUMMARY_MAX - 1] + "…"


class PagerDutyNotifier(Notifier[PagerDutyConfig]):
    """Sends one event per notification (per routing key: see the module docstring)."""

    Config = PagerDutyConfig
    contact = "pagerduty"  # also triggers each paged person's own service
    follows = INCIDENT_LIFECYCLE  # acknowledges and resolves what it opened

    def _personal_keys(self, n: Notification) -> list[str]:
        return list(dict.fromkeys(k for r in n.recipients if (k := r.contact("pagerduty"))))

    def build_payload(self, n: Notification) -> dict[str, Any]:
        """The event for `n`, addressed to the first paged person's own routing key, or
        else the configured one. Acknowledge and resolve carry only three fields; a
        handoff summary is not sent (an empty payload)."""
        if n.event is NotificationEvent.HANDOFF:
            return {}
        personal = self._personal_keys(n)
        key = personal[0] if personal else self.config.routing_key.get_secret_value()
        action = _ACTION.get(n.event, "trigger")
        body: dict[str, Any] = {
            "routing_key": key,
            "event_action": action,
            "dedup_key": dedup_key(n),
        }
        if action != "trigger":
            return body
        payload: dict[str, Any] = {
            "summary": _summary(n),
            "source": self.config.source,
            "severity": SEVERITY[n.severity] if n.severity else UNTRIAGED,
            "timestamp": n.created_at.isoformat(),
        }
        if n.check:
            payload["component"] = n.check
        payload["custom_details"] = {
            "event": n.event.value,
            "text": n.text[:10_000],
            "incident_id": n.incident_id,
            "severity": n.severity.value if n.severity else None,
            "status": n.status,
            "paged": [r.name for r in n.recipients],
            "actor": n.actor,
            "drill": n.drill,
        }
        body["payload"] = payload
        links = ([{"href": n.runbook, "text": "Runbook"}] if n.runbook else []) + [
            {"href": url, "text": label} for label, url in n.links.items()
        ]
        if links:
            body["links"] = links
        body["client"] = "project-asset-monitor"
        return body

    async def send(self, n: Notification) -> None:
        body = self.build_payload(n)
        if not body:
            log.debug("notification_skipped", notifier=self.name, kind=n.event.value)
            return
        configured = self.config.routing_key.get_secret_value()
        personal = self._personal_keys(n)
        state_key = f"pagerduty:{self.name}:{n.incident_id}" if n.incident_id is not None else None
        used = await self._used_keys(state_key)
        if body["event_action"] == "trigger":
            keys = personal or [configured]
        else:  # wherever the incident may be open
            keys = list(dict.fromkeys([configured, *used, *personal]))
        secrets = (*self.secrets, *personal, *used)
        for key in keys:
            await post(self.session, f"PagerDuty ({self.name})", self.config.url,
                       json_body={**body, "routing_key": key}, secrets=secrets,
                       clock=self.clock)  # fmt: skip
        new = [k for k in keys if k not in used]
        if body["event_action"] == "trigger" and new and state_key and self.state is not None:
            await self.state.kv_set(state_key, json.dumps([*used, *new]))

    async def _used_keys(self, state_key: str | None) -> list[str]:
        """The routing keys the incident was triggered with so far."""
        if state_key is None or self.state is None:
            return []
        value = await self.state.kv_get(state_key)
        try:
            keys = json.loads(value) if value else []
        except ValueError:
            return []
        return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
