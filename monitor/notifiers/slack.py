"""`type: slack`: a Slack incoming webhook; blocks with a text fallback, colour by severity."""

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

__all__ = ["SlackConfig", "SlackNotifier", "slack_message"]

_COLOUR = {Severity.P0: "#d00000", Severity.P1: "#ff8c00", Severity.P2: "#f2c744"}
_VERB = {
    NotificationEvent.TRIGGER: "", NotificationEvent.ACKNOWLEDGE: "Acknowledged: ",
    NotificationEvent.RESOLVE: "Resolved: ", NotificationEvent.REASSIGN: "Reassigned: ",
    NotificationEvent.HANDOFF: "", NotificationEvent.MONITOR_ALERT: "Monitor alert: ",
}  # fmt: skip


def slack_message(n: Notification) -> dict[str, Any]:
    """`text` (the fallback and notification line) and a coloured attachment of blocks;
    shared by the webhook and the bot."""
    mentions = " ".join(f"<@{r.slack}>" if r.slack else r.name for r in n.recipients)
    head = (
        ("DRILL " if n.drill else "")
        + (f"[{n.severity}] " if n.severity else "")
        + _VERB[n.event]
        + n.title
    )
    text = f"{head}\n{n.text}" + (f"\n{mentions}" if mentions else "")
    context = [f"<{n.runbook}|runbook>"] if n.runbook else []
    context += [f"<{url}|{label}>" for label, url in n.links.items()]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{head}*\n{n.text}" + (f"\n{mentions}" if mentions else ""),
            },
        },
    ]
    if context:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
        )
    colour = (
        "#2eb67d"
        if n.event is NotificationEvent.RESOLVE
        else _COLOUR.get(n.severity, "#808080")
        if n.severity
        else "#808080"
    )
    return {"text": text, "attachments": [{"color": colour, "blocks": blocks}]}


class SlackConfig(NotifierConfigBase):
    type: Literal["slack"]
    url: SecretStr


class SlackNotifier(Notifier[SlackConfig]):
    Config = SlackConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return slack_message(n)

    async def send(self, n: Notification) -> None:
        # Slack answers plain text: "ok", or an error word such as invalid_payload.
        await post_json(
            self.session,
            f"Slack ({self.name})",
            self.config.url.get_secret_value(),
            self.build_payload(n),
        )
