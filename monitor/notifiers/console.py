"""`type: console`: one line per notification on stdout; the default when no notifier is
configured (and what `monitor check` prints)."""

from __future__ import annotations

import sys
from typing import Any, Literal

from monitor.notifiers.base import Notification, Notifier, NotifierConfigBase, headline

__all__ = ["ConsoleConfig", "ConsoleNotifier"]


class ConsoleConfig(NotifierConfigBase):
    type: Literal["console"]


class ConsoleNotifier(Notifier[ConsoleConfig]):
    """Prints `headline: text → people`, a multi-line text joined with ` | `."""

    Config = ConsoleConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        text = " | ".join(line.strip() for line in n.text.splitlines() if line.strip())
        line = headline(n) + (f": {text}" if text else "")
        if n.recipients:
            line += " → " + ", ".join(r.name for r in n.recipients)
        return {"line": line}

    async def send(self, n: Notification) -> None:
        print(self.build_payload(n)["line"], file=sys.stdout, flush=True)
