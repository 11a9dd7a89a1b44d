"""`type: webhook`: a stable JSON document for your own tooling, signed, with an
idempotency key.

Schema version 1 (a new field may be added within a version; a field is never removed,
renamed or retyped without bumping `version`)::

    version          1
    event            trigger | acknowledge | resolve | reassign | handoff | monitor_alert
    idempotency_key  the same for every attempt at the same notification
    incident         {id, dedup_key, title, status, severity, check}; id, dedup_key,
                     status, severity and check may be null (a handoff, a monitor alert)
    text             the human message
    recipients       names of the people paged ([] for a post to a channel)
    runbook          URL or null
    links            {label: URL}
    actor            who acknowledged, resolved or reassigned, or null
    drill            true for a test of the paging path
    created_at       ISO 8601 with offset

Headers: `Idempotency-Key: <idempotency_key>`; with a `secret`,
`X-Monitor-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from pydantic import Field, SecretStr

from monitor.core.configtypes import HeaderMap
from monitor.notifiers.base import (
    HttpUrlSecret,
    Notification,
    Notifier,
    NotifierConfigBase,
    post,
)

__all__ = ["SCHEMA_VERSION", "WebhookConfig", "WebhookNotifier", "sign"]

SCHEMA_VERSION = 1


class WebhookConfig(NotifierConfigBase):
    type: Literal["webhook"]
    url: HttpUrlSecret  # may carry a secret path or query: never shown
    secret: SecretStr | None = None
    headers: HeaderMap = Field(default_factory=dict)


def sign(secret: str, body: bytes) -> str:
    """The `X-Monitor-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier[WebhookConfig]):
    """POSTs the schema-1 document of each notification."""

    Config = WebhookConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "event": n.event.value,
            "idempotency_key": n.idempotency_key,
            "incident": {
                "id": n.incident_id,
                "dedup_key": n.dedup_key,
                "title": n.title,
                "status": n.status,
                "severity": n.severity.value if n.severity else None,
                "check": n.check,
            },
            "text": n.text,
            "recipients": [r.name for r in n.recipients],
            "runbook": n.runbook,
            "links": dict(n.links),
            "actor": n.actor,
            "drill": n.drill,
            "created_at": n.created_at.isoformat(),
        }

    async def send(self, n: Notification) -> None:
        # The signature covers these exact bytes: they are sent as they are.
        body = json.dumps(self.build_payload(n), separators=(",", ":"), ensure_ascii=False)
        raw = body.encode()
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": n.idempotency_key,
        }
        if self.config.secret is not None:
            headers["X-Monitor-Signature"] = sign(self.config.secret.get_secret_value(), raw)
        # Header values may hold a token (Authorization): they are secrets too.
        secrets = (*self.secrets, *self.config.headers.values())
        await post(self.session, f"webhook ({self.name})", self.config.url.get_secret_value(),
                   data=raw, headers=headers, secrets=secrets, clock=self.clock)  # fmt: skip
