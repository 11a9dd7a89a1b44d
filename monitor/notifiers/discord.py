"""`type: discord`: a Discord webhook with an embed, posted with `?wait=true`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import SecretStr
from yarl import URL

from monitor.model import Severity
from monitor.notifiers.base import (
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    post_json,
)

__all__ = ["DiscordConfig", "DiscordNotifier"]

_COLOUR = {Severity.P0: 0xD00000, Severity.P1: 0xFF8C00, Severity.P2: 0xF2C744}
_RESOLVED = 0x2EB67D


class DiscordConfig(NotifierConfigBase):
    type: Literal["discord"]
    url: SecretStr


class DiscordNotifier(Notifier[DiscordConfig]):
    Config = DiscordConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        ids = [r.discord for r in n.recipients if r.discord]
        head = ("DRILL " if n.drill else "") + (f"[{n.severity}] " if n.severity else "") + n.title
        colour = (
            _RESOLVED
            if n.event is NotificationEvent.RESOLVE
            else _COLOUR.get(n.severity, 0x808080)
            if n.severity
            else 0x808080
        )
        fields = [{"name": k, "value": v, "inline": True}
                  for k, v in (("check", n.check), ("severity", n.severity and n.severity.value), ("status", n.status))
                  if v]  # fmt: skip
        embed: dict[str, Any] = {
            "title": head[:256],
            "description": n.text[:4096],
            "color": colour,
            "fields": fields,
        }
        if n.runbook:
            embed["url"] = n.runbook
        return {
            "content": " ".join(f"<@{i}>" for i in ids) or None,
            # Only the paged people are pinged, never @everyone or roles from the text.
            "allowed_mentions": {"parse": [], "users": ids},
            "embeds": [embed],
        }

    async def send(self, n: Notification) -> None:
        url = str(URL(self.config.url.get_secret_value()).update_query(wait="true"))
        await post_json(self.session, f"Discord ({self.name})", url, self.build_payload(n))
