"""`type: discord`: a Discord webhook; one embed coloured by severity, posted with
`?wait=true` so Discord answers only once the message exists.

The paged people's Discord ids are mentioned in `content`, and `allowed_mentions` lets
exactly those users be pinged: never @everyone, @here or a role written in a check's text.
A 429 carries `retry_after` in its JSON body as well as `Retry-After`.
"""

from __future__ import annotations

from typing import Any, Literal

from yarl import URL

from monitor.core.model import Severity
from monitor.notifiers.base import (
    DRILL_NOTE,
    HttpUrlSecret,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    headline,
    post,
)

__all__ = ["DiscordConfig", "DiscordNotifier"]

COLOURS = {Severity.P0: 0xD00000, Severity.P1: 0xFF8C00, Severity.P2: 0xF2C744}
RESOLVED = 0x2EB67D
UNRANKED = 0x95A5A6
_EMBED_TOTAL = 6000  # Discord refuses (400) an embed whose texts add up to more


class DiscordConfig(NotifierConfigBase):
    type: Literal["discord"]
    url: HttpUrlSecret  # https://discord.com/api/webhooks/{id}/{token}


def _colour(n: Notification) -> int:
    if n.event is NotificationEvent.RESOLVE:
        return RESOLVED
    return COLOURS[n.severity] if n.severity else UNRANKED


class DiscordNotifier(Notifier[DiscordConfig]):
    """Posts each notification to the webhook's channel."""

    Config = DiscordConfig
    contact = "discord"  # mentions the paged by user id

    def build_payload(self, n: Notification) -> dict[str, Any]:
        ids = list(dict.fromkeys(i for r in n.recipients if (i := r.contact("discord"))))[:100]
        mentions = " ".join(f"<@{i}>" for i in ids)
        content = " ".join(part for part in ("**DRILL**" if n.drill else "", mentions) if part)
        facts = [
            ("Severity", (n.severity or "untriaged") if n.incident_id is not None else None),
            ("Status", n.status),
            ("Check", n.check),
            ("Incident", f"#{n.incident_id}" if n.incident_id is not None else None),
            ("By", n.actor),
        ]
        fields = [(k, v[:1024], True) for k, v in facts if v]
        links = ([("Runbook", n.runbook)] if n.runbook else []) + list(n.links.items())
        if links:
            value = "\n".join(f"[{label}]({url})" for label, url in links)
            fields.append(("Links", value[:1024], False))
        title = headline(n)[:256]
        footer = DRILL_NOTE if n.drill else "project-asset-monitor"
        # Title, description, field names and values and the footer share one budget.
        room = _EMBED_TOTAL - len(title) - len(footer) - sum(len(k) + len(v) for k, v, _ in fields)
        embed: dict[str, Any] = {
            "title": title,
            "color": _colour(n),
            "fields": [{"name": k, "value": v, "inline": inline} for k, v, inline in fields],
            "footer": {"text": footer},
            "timestamp": n.created_at.isoformat(),
        }
        if n.text:  # Discord refuses an empty string
            embed["description"] = n.text[: max(0, min(4096, room))]
        if n.runbook:
            embed["url"] = n.runbook
        body: dict[str, Any] = {"allowed_mentions": {"parse": [], "users": ids}, "embeds": [embed]}
        if content:
            body["content"] = content[:2000]
        return body

    async def send(self, n: Notification) -> None:
        # `wait=true`: a 200 with the message once it is posted, not a 204 before.
        url = URL(self.config.url.get_secret_value()).update_query(wait="true")
        await post(self.session, f"Discord ({self.name})", str(url),
                   json_body=self.build_payload(n), secrets=self.secrets, clock=self.clock)  # fmt: skip
