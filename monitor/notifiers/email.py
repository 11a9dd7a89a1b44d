"""`type: email`: one message per notification over SMTP (stdlib `smtplib`, run in a
thread under a timeout so the event loop never blocks).

The `Message-ID` is derived from the idempotency key, so a message sent again after a
crash is the same message to the receiving side; `References` names the incident, so
mail clients thread an incident's messages. 4xx replies (greylisting, a full queue) and
connection errors are retried; 5xx replies are permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

import structlog
from pydantic import Field, SecretStr

from monitor.core.configtypes import PositiveDuration
from monitor.notifiers.base import (
    DRILL_NOTE,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    NotifierError,
    headline,
    redact,
)

__all__ = ["EmailConfig", "EmailNotifier", "message_id"]

log = structlog.stdlib.get_logger(__name__)

_LIFECYCLE = frozenset(
    {NotificationEvent.ACKNOWLEDGE, NotificationEvent.RESOLVE, NotificationEvent.REASSIGN}
)
_PLAIN_RELAY = (
    "for a plain relay (e.g. a local MTA on port 25) set `port: 25` and `starttls: false`"
)
_ADDRESS = r"^[^@\s]+@[^@\s]+$"
_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")  # what a Message-ID's left side may hold


class EmailConfig(NotifierConfigBase):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=_ADDRESS)
    to: list[str] = Field(
        default_factory=list, description="Always sent to; paged people are added."
    )
    # Per SMTP step; the whole conversation gets twice this (the outbox allows 30s).
    timeout: PositiveDuration = timedelta(seconds=10)


def message_id(key: str, sender: str) -> str:
    """`<key@sender's domain>`, with what RFC 5322 forbids on the left replaced by dots
    (a long key is hashed), so every attempt at one notification has one Message-ID."""
    left = _UNSAFE.sub(".", key).strip(".") or "notification"
    if len(left) > 120:
        left = hashlib.sha256(key.encode()).hexdigest()
    return f"<{left}@{sender.rpartition('@')[2]}>"


class EmailNotifier(Notifier[EmailConfig]):
    """Mails the configured `to` and every paged person who has an email address."""

    Config = EmailConfig
    contact = "email"  # adds the paged to `to`

    def build_payload(self, n: Notification) -> dict[str, Any]:
        """The message fields: subject, from, to, body and the headers `send` sets."""
        c = self.config
        to = list(dict.fromkeys([*c.to, *(a for r in n.recipients if (a := r.contact("email")))]))
        lines = [DRILL_NOTE, ""] if n.drill else []
        lines += [n.text, ""] if n.text else []
        facts = [
            ("Severity", (n.severity or "untriaged") if n.incident_id is not None else None),
            ("Status", n.status),
            ("Check", n.check),
            ("Incident", f"#{n.incident_id}" if n.incident_id is not None else None),
            ("Paged", ", ".join(r.name for r in n.recipients)),
            ("By", n.actor),
            ("Runbook", n.runbook),
        ]
        lines += [f"{name}: {value}" for name, value in facts if value]
        lines += [f"{label}: {url}" for label, url in n.links.items()]
        payload: dict[str, Any] = {
            "subject": " ".join(headline(n).split())[:200],
            "from": c.sender,
            "to": to,
            "body": "\n".join(lines).strip() + "\n",
            "message_id": message_id(n.idempotency_key, c.sender),
            "date": format_datetime(n.created_at),
        }
        if n.incident_id is not None:
            payload["references"] = message_id(f"incident.{n.incident_id}", c.sender)
        return payload

    async def send(self, n: Notification) -> None:
        payload = self.build_payload(n)
        if not payload["to"] and n.event in _LIFECYCLE and not n.recipients:
            # No team list: an acknowledgement or resolve has nobody to go to, and that is
            # no delivery failure (pages still reach each person's own address).
            log.debug("notification_skipped", notifier=self.name, kind=n.event.value)
            return
        if not payload["to"]:
            raise NotifierError(
                f"email ({self.name}): nobody to send to (set `to`)", retryable=False
            )
        message = EmailMessage()
        message["Subject"] = payload["subject"]
        message["From"] = payload["from"]
        message["To"] = ", ".join(payload["to"])
        message["Date"] = payload["date"]
        message["Message-ID"] = payload["message_id"]
        if "references" in payload:
            message["References"] = payload["references"]
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
        message.set_content(payload["body"])
        timeout_s = self.config.timeout.total_seconds()
        try:
            # The socket timeout bounds each step; this bounds the whole conversation.
            async with asyncio.timeout(timeout_s * 2):
                await asyncio.to_thread(self._deliver, message, timeout_s)
        except TimeoutError as exc:
            raise NotifierError(f"email ({self.name}): the SMTP server took too long",
                                retryable=True) from exc  # fmt: skip

    def _deliver(self, message: EmailMessage, timeout_s: float) -> None:
        """Runs in a thread: one SMTP conversation, its errors mapped to NotifierError."""
        c = self.config
        what = f"email ({self.name})"
        try:
            try:
                smtp = smtplib.SMTP(c.host, c.port, timeout=timeout_s)
            except ConnectionRefusedError as exc:
                hint = f"; {_PLAIN_RELAY}" if c.port == 587 else ""
                raise NotifierError(f"{what}: nothing accepts connections on {c.host}:{c.port}"
                                    + hint, retryable=True) from exc  # fmt: skip
            with smtp:
                if c.starttls:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise NotifierError(
                            f"{what}: the server at {c.host}:{c.port} offers no STARTTLS "
                            f"(`starttls: true` is the default); {_PLAIN_RELAY}",
                            retryable=False,
                        )
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password.get_secret_value() if c.password else "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            replies = dict(exc.recipients.values())
            code = max(replies)
            raise NotifierError(
                f"{what}: every recipient refused: {self._reply(code, replies[code])}",
                retryable=all(400 <= x < 500 for x in replies),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx is a transient refusal (greylisting, a full queue); 5xx is final.
            raise NotifierError(
                f"{what}: the server answered {self._reply(exc.smtp_code, exc.smtp_error)}",
                retryable=400 <= exc.smtp_code < 500,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH: a setup mistake
            raise NotifierError(f"{what}: {redact(str(exc), self.secrets)}",
                                retryable=False) from exc  # fmt: skip
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out
            detail = redact(str(exc), self.secrets)
            raise NotifierError(f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""),
                                retryable=True) from exc  # fmt: skip
        if refused:
            log.warning("email_recipients_refused", notifier=self.name, recipients=sorted(refused))

    def _reply(self, code: int, text: bytes | str) -> str:
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{code} " + redact(" ".join(raw.split()), self.secrets)[:200]
