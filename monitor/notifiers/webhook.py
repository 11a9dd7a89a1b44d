"""`type: webhook`: a stable JSON document, signed with HMAC-SHA256, with an idempotency key.

Schema version 1: `version`, `event`, `idempotency_key`, `incident` (`id`, `dedup_key`,
`title`, `status`, `severity`, `check`), `text`, `recipients` (names), `runbook`, `links`,
`actor`, `drill`, `created_at`. Headers: `Idempotency-Key`, and with a secret
`X-Monitor-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from pydantic import Field, SecretStr

from monitor.notifiers.base import Notification, Notifier, NotifierConfigBase, post_json

__all__ = ["WebhookConfig", "WebhookNotifier", "sign"]


class WebhookConfig(NotifierConfigBase):
    type: Literal["webhook"]
    url: SecretStr
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier[WebhookConfig]):
    Config = WebhookConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {
            "version": 1,
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
        body = json.dumps(self.build_payload(n), separators=(",", ":")).encode()
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": n.idempotency_key,
        }
        redact = list(self.config.headers.values())  # may hold an Authorization token
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers["X-Monitor-Signature"] = sign(secret, body)
            redact.append(secret)
        await post_json(
            self.session,
            f"webhook {self.name}",
            self.config.url.get_secret_value(),
            None,
            headers=headers,
            data=body,
            redact=redact,
        )
