"""`type: slack`: a Slack incoming webhook. Blocks with a plain-text fallback, coloured by
severity; the paged people's Slack ids are mentioned.

A webhook answers in plain text: `ok`, or an error word (`invalid_payload`, `no_text`,
`channel_is_archived`, `no_service`…). Only `ok` is a success.
"""

from __future__ import annotations

from typing import Any, Literal

from monitor.core.model import Severity
from monitor.notifiers.base import (
    DRILL_NOTE,
    HttpUrlSecret,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    NotifierError,
    headline,
    post,
    redact,
)

__all__ = ["SlackConfig", "SlackNotifier", "slack_message"]

COLOURS = {Severity.P0: "#d00000", Severity.P1: "#ff8c00", Severity.P2: "#f2c744"}
RESOLVED = "#2eb67d"
UNRANKED = "#95a5a6"  # untriaged, handoffs


def escape(text: str) -> str:
    """Slack mrkdwn control characters: a check's text could otherwise open a link or
    mention `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{escape(label).replace('|', '¦')}>"


def colour(n: Notification) -> str:
    if n.event is NotificationEvent.RESOLVE:
        return RESOLVED
    return COLOURS[n.severity] if n.severity else UNRANKED


def slack_message(n: Notification, *, mention: bool = True) -> dict[str, Any]:
    """The message body, shared by the webhook and the bot (`chat.postMessage`).

    `text` is the notification and screen-reader fallback; top-level blocks carry the
    headline and the mentions; the attachment carries the colour bar and the details.
    `mention=False` leaves the people out (the bot's edit of an incident's root message).
    """
    head = headline(n)
    mentions = " ".join(
        f"<@{r.contact('slack')}>" if r.contact("slack") else escape(r.name) for r in n.recipients
    )
    mentions = mentions if mention else ""
    text = "\n".join(part for part in (escape(head), escape(n.text), mentions) if part)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}}
    ]
    if mentions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": mentions}})
    details: list[dict[str, Any]] = []
    if n.text:
        details.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(n.text)[:3000]}}
        )
    facts = [
        ("Severity", (n.severity or "untriaged") if n.incident_id is not None else None),
        ("Status", n.status),
        ("Check", n.check),
        ("Incident", f"#{n.incident_id}" if n.incident_id is not None else None),
        ("By", n.actor),
    ]
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{escape(value)[:1900]}"}
        for name, value in facts
        if value
    ]
    if fields:
        details.append({"type": "section", "fields": fields})
    links = ([_link(n.runbook, "Runbook")] if n.runbook else []) + [
        _link(url, label) for label, url in n.links.items()
    ]
    context = ([f"*{escape(DRILL_NOTE)}*"] if n.drill else []) + (
        [" · ".join(links)] if links else []
    )
    if context:
        details.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": c} for c in context]}
        )
    return {
        "text": text,
        "blocks": blocks,
        "attachments": [{"color": colour(n), "blocks": details}],
        "unfurl_links": False,
        "unfurl_media": False,
    }


class SlackConfig(NotifierConfigBase):
    type: Literal["slack"]
    url: HttpUrlSecret  # https://hooks.slack.com/services/T…/B…/…


class SlackNotifier(Notifier[SlackConfig]):
    """Posts each notification to the webhook's channel."""

    Config = SlackConfig
    contact = "slack"  # mentions the paged by member id

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return slack_message(n)

    async def send(self, n: Notification) -> None:
        what = f"Slack ({self.name})"
        answer = await post(
            self.session, what, self.config.url.get_secret_value(),
            json_body=self.build_payload(n), secrets=self.secrets, clock=self.clock,
        )  # fmt: skip
        # A 2xx whose body is not `ok` was not posted (a proxy's page, a changed API).
        if answer.strip() != "ok":
            short = redact(" ".join(answer.split()), self.secrets)[:200] or "an empty body"
            raise NotifierError(f"{what} answered {short!r}, not ok", retryable=False)
