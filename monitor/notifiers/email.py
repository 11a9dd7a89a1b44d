"""`type: email`: mail over SMTP (stdlib smtplib, run off the event loop)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

from pydantic import Field, SecretStr

from monitor.notifiers.base import Notification, Notifier, NotifierConfigBase, NotifierError

__all__ = ["EmailConfig", "EmailNotifier"]


class EmailConfig(NotifierConfigBase):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(
        default_factory=list, description="Always sent to; paged people are added."
    )
    timeout: float = Field(default=15.0, gt=0)


class EmailNotifier(Notifier[EmailConfig]):
    Config = EmailConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        to = list(dict.fromkeys([*self.config.to, *(r.email for r in n.recipients if r.email)]))
        subject = (
            ("DRILL " if n.drill else "")
            + (f"[{n.severity}] " if n.severity else "")
            + f"{n.event.value}: {n.title}"
        )
        lines = [n.text, ""]
        if n.runbook:
            lines.append(f"Runbook: {n.runbook}")
        lines += [f"{label}: {url}" for label, url in n.links.items()]
        if n.actor:
            lines.append(f"By: {n.actor}")
        return {
            "subject": subject,
            "from": self.config.sender,
            "to": to,
            "body": "\n".join(lines).strip() + "\n",
            # The idempotency key makes the Message-ID: a resent page is the same message.
            "message_id": f"<{n.idempotency_key.replace(':', '.')}@project-asset-monitor>",
            "date": format_datetime(n.created_at),
        }

    async def send(self, n: Notification) -> None:
        payload = self.build_payload(n)
        if not payload["to"]:
            raise NotifierError(f"email {self.name}: nobody to send to", retryable=False)
        message = EmailMessage()
        message["Subject"] = payload["subject"]
        message["From"] = payload["from"]
        message["To"] = ", ".join(payload["to"])
        message["Message-ID"] = payload["message_id"]
        message["Date"] = payload["date"]
        message.set_content(payload["body"])
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        c = self.config
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout) as smtp:
                if c.starttls:
                    smtp.starttls()
                if c.username:
                    smtp.login(c.username, c.password.get_secret_value() if c.password else "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise NotifierError(
                f"email {self.name}: recipients refused ({codes})",
                retryable=all(400 <= x < 500 for x in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx is a transient refusal (greylisting, full mailbox); 5xx is final.
            raise NotifierError(
                f"email {self.name}: server answered {exc.smtp_code}",
                retryable=400 <= exc.smtp_code < 500,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifierError(f"email {self.name}: {type(exc).__name__}", retryable=True) from exc
