"""Notifier types: the YAML `type:` value → the class. One module and one line each.

Third-party notifiers register through the entry-point group `monitor.notifiers`
(name = the `type:`, value = the `Notifier` subclass); `load_plugins()` adds them.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import structlog

from monitor.notifiers.base import Notifier
from monitor.notifiers.console import ConsoleNotifier
from monitor.notifiers.discord import DiscordNotifier
from monitor.notifiers.email import EmailNotifier
from monitor.notifiers.pagerduty import PagerDutyNotifier
from monitor.notifiers.slack import SlackNotifier
from monitor.notifiers.slack_bot import SlackBotNotifier
from monitor.notifiers.webhook import WebhookNotifier

__all__ = ["NOTIFIERS", "load_plugins"]

log = structlog.stdlib.get_logger(__name__)

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
    "console": ConsoleNotifier,
    "discord": DiscordNotifier,
    "email": EmailNotifier,
    "pagerduty": PagerDutyNotifier,
    "slack": SlackNotifier,
    "slack_bot": SlackBotNotifier,
    "webhook": WebhookNotifier,
}


def load_plugins(group: str = "monitor.notifiers") -> list[str]:
    """Adds notifiers from installed packages; a broken one is skipped with a warning."""
    added = []
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Notifier)):
                raise TypeError(f"{ep.value} is not a Notifier subclass")
        except Exception as exc:  # noqa: BLE001  a broken plugin must not stop the monitor
            log.warning("notifier_plugin_skipped", plugin=ep.name, error=str(exc))
            continue
        NOTIFIERS.setdefault(ep.name, cls)
        added.append(ep.name)
    return added
