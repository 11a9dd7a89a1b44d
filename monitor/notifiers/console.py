"""`type: console`: one line per notification on stdout; the default with no notifiers."""

from __future__ import annotations

import sys
from typing import Any, Literal

from monitor.notifiers.base import Notification, Notifier, NotifierConfigBase

__all__ = ["ConsoleConfig", "ConsoleNotifier"]


class ConsoleConfig(NotifierConfigBase):
    type: Literal["console"]


class ConsoleNotifier(Notifier[ConsoleConfig]):
    Config = ConsoleConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        who = ", ".join(r.name for r in n.recipients)
        line = f"[{n.event.value}] {n.severity or '-'} {n.title}: {n.text}" + (
            f" → {who}" if who else ""
        )
        return {"line": ("DRILL " if n.drill else "") + line}

    async def send(self, n: Notification) -> None:
        print(self.build_payload(n)["line"], file=sys.stdout, flush=True)
