"""`type: pagerduty`: PagerDuty Events API v2, trigger / acknowledge / resolve by dedup key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import SecretStr

from monitor.model import Severity
from monitor.notifiers.base import (
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    post_json,
)

__all__ = ["PagerDutyConfig", "PagerDutyNotifier"]

_SEVERITY = {Severity.P0: "critical", Severity.P1: "error", Severity.P2: "warning"}
_ACTION = {NotificationEvent.ACKNOWLEDGE: "acknowledge", NotificationEvent.RESOLVE: "resolve"}


class PagerDutyConfig(NotifierConfigBase):
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyNotifier(Notifier[PagerDutyConfig]):
    Config = PagerDutyConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        # A person's own routing key (their PagerDuty service) wins over the configured one.
        personal = next((r.pagerduty for r in n.recipients if r.pagerduty), None)
        key = personal or self.config.routing_key.get_secret_value()
        action = _ACTION.get(n.event, "trigger")
        # Lifecycle events follow the incident's dedup key; anything else is its own alert.
        dedup = (
            n.dedup_key
            if n.event in (NotificationEvent.TRIGGER, *_ACTION) and n.dedup_key
            else n.idempotency_key
        )
        body: dict[str, Any] = {"routing_key": key, "event_action": action, "dedup_key": dedup}
        if action == "trigger":
            summary = ("DRILL: " if n.drill else "") + f"{n.title}: {n.text}"
            body["payload"] = {
                "summary": summary[:1024],
                "source": "project-asset-monitor",
                "severity": _SEVERITY.get(n.severity, "info") if n.severity else "info",
                "component": n.check,
                "custom_details": {
                    "text": n.text,
                    "status": n.status,
                    "actor": n.actor,
                    "paged": [r.name for r in n.recipients],
                },
            }
            links = [{"href": n.runbook, "text": "runbook"}] if n.runbook else []
            links += [{"href": url, "text": text} for text, url in n.links.items()]
            if links:
                body["links"] = links
        return body

    async def send(self, n: Notification) -> None:
        body = self.build_payload(n)
        await post_json(
            self.session,
            f"PagerDuty ({self.name})",
            self.config.url,
            body,
            redact=(body["routing_key"], self.config.routing_key.get_secret_value()),
        )
