"""Notifier types: the YAML `type:` value → the class. Adding a type is one module under
`notifiers/` and one line here.

Third-party types come from installed packages through the entry-point group
`monitor.notifiers` (name = the `type:`, value = `package.module:NotifierClass`);
`load_plugins()` adds them, skipping with a warning any that cannot be used.
"""

from __future__ import annotations

import typing
from importlib.metadata import entry_points
from typing import Any

import structlog

from monitor.notifiers.base import Notifier, NotifierConfigBase
from monitor.notifiers.console import ConsoleNotifier
from monitor.notifiers.discord import DiscordNotifier
from monitor.notifiers.email import EmailNotifier
from monitor.notifiers.pagerduty import PagerDutyNotifier
from monitor.notifiers.slack import SlackNotifier
from monitor.notifiers.slack_bot import SlackBotNotifier
from monitor.notifiers.webhook import WebhookNotifier

__all__ = ["ENTRY_POINT_GROUP", "NOTIFIERS", "load_plugins"]

log = structlog.stdlib.get_logger(__name__)

ENTRY_POINT_GROUP = "monitor.notifiers"

NOTIFIERS: dict[str, type[Notifier[Any]]] = {
    "console": ConsoleNotifier,
    "discord": DiscordNotifier,
    "email": EmailNotifier,
    "pagerduty": PagerDutyNotifier,
    "slack": SlackNotifier,
    "slack_bot": SlackBotNotifier,
    "webhook": WebhookNotifier,
}


def load_plugins(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Adds the notifier types of installed packages to `NOTIFIERS`; returns the names
    added. A plugin that fails to import, is not a `Notifier`, has no usable `Config`,
    or takes a built-in's name is skipped with a `notifier_plugin_skipped` warning: one
    broken package must not stop the monitor (a config naming its type still fails)."""
    added = []
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
            problem = _unusable(ep.name, cls)
        except Exception as exc:  # noqa: BLE001  any import-time error of someone else's code
            problem = f"cannot be loaded: {type(exc).__name__}: {exc}"
        if problem is None and ep.name in NOTIFIERS and NOTIFIERS[ep.name] is not cls:
            problem = f"the type {ep.name!r} is taken by {NOTIFIERS[ep.name].__qualname__}"
        if problem is not None:
            log.warning("notifier_plugin_skipped", plugin=ep.name, target=ep.value, reason=problem)
            continue
        if ep.name not in NOTIFIERS:
            NOTIFIERS[ep.name] = cls
            added.append(ep.name)
            log.info("notifier_plugin_loaded", plugin=ep.name, target=ep.value)
    return added


def _unusable(name: str, cls: object) -> str | None:
    """Why `cls` cannot be the notifier type `name`, or None."""
    if not (isinstance(cls, type) and issubclass(cls, Notifier)):
        return "is not a monitor.notifiers.base.Notifier subclass"
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, NotifierConfigBase)):
        return "its Config is not a NotifierConfigBase subclass"
    # The config file picks the model by `type:`; it must be exactly this name.
    field = config.model_fields.get("type")
    if field is None or typing.get_args(field.annotation) != (name,):
        return f'its Config must declare type: Literal["{name}"]'
    return None
