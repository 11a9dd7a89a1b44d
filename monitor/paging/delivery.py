"""From the outbox to the channels: the configured notifiers, and what the outbox is told
to do when a channel fails.

`Delivery` builds each notifier with the shared session and the store (its durable state,
e.g. the Slack thread of each incident), delivers an outbox payload to it, and answers the
outbox's callbacks: a channel's outage and its recovery are said on every other channel,
once per outage; a notification that gives up is written on its incident's timeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from monitor.core.clock import Clock
from monitor.core.model import OutboxItem, Severity
from monitor.incidents.manager import IncidentError, IncidentManager
from monitor.metrics.exporter import Metrics
from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import (
    Notification,
    NotificationEvent,
    Notifier,
    NotifierConfigBase,
    NotifierContext,
)
from monitor.paging.leader import Leadership
from monitor.paging.outbox import Outbox, incident_of
from monitor.paging.pager import from_payload, to_payload
from monitor.store import Store

__all__ = ["Delivery"]


class Delivery:
    """The notifiers of one config and the outbox that delivers to them (`outbox`)."""

    def __init__(
        self,
        configs: Mapping[str, NotifierConfigBase],
        session: aiohttp.ClientSession,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        incidents: IncidentManager,
        lead: Leadership | None = None,
    ) -> None:
        self.clock = clock
        self.incidents = incidents
        self.notifiers: dict[str, Notifier[Any]] = {
            name: NOTIFIERS[c.type](name, c, NotifierContext(session, store, clock))
            for name, c in configs.items()
        }
        self.types = {name: c.type for name, c in configs.items()}
        self.outbox = Outbox(
            store, clock, metrics, self.deliver, list(self.notifiers),
            on_dead_letter=self.dead_letter, on_outage=self.outage, on_recovered=self.recovered,
            give_up_after=_each(configs, "give_up_after"),
            alert_after=_each(configs, "alert_after"), lead=lead,
        )  # fmt: skip

    async def deliver(self, name: str, payload: str) -> None:
        await self.notifiers[name].send(from_payload(payload))

    async def alert(
        self, key: str, event: NotificationEvent, notifier: str, title: str, text: str
    ) -> None:
        """About the monitor itself: said on every channel but the one concerned."""
        now = self.clock.now()
        note = Notification(
            idempotency_key=key, event=event, incident_id=None, dedup_key=f"monitor:{notifier}",
            title=title, text=text, severity=Severity.P1, status=None, check=None, created_at=now,
        )  # fmt: skip
        await self.outbox.enqueue(
            [
                OutboxItem(0, f"{key}:{o}", o, to_payload(note), now, now)
                for o in self.notifiers
                if o != notifier
            ]
        )

    async def outage(self, notifier: str, reason: str) -> None:
        # One alert per outage of a channel, however many messages it fails.
        stamp = int(self.clock.now().timestamp())
        await self.alert(f"alert:{notifier}:{stamp}", NotificationEvent.MONITOR_ALERT, notifier,
              f"The monitor cannot deliver through {notifier}",
              f"Notifications through {notifier} fail ({reason}). They are kept and retried "
              "until they give up; check the channel and its configuration.")  # fmt: skip

    async def recovered(self, notifier: str, since: datetime) -> None:
        stamp = int(since.timestamp())
        await self.alert(f"recovered:{notifier}:{stamp}", NotificationEvent.RESOLVE, notifier,
              f"The monitor delivers through {notifier} again",
              f"{notifier} delivers again (unreachable since {since:%Y-%m-%d %H:%M} UTC).")  # fmt: skip

    async def dead_letter(self, item: OutboxItem, reason: str) -> None:
        incident = incident_of(item.key)
        if incident is None:
            return
        try:
            what = from_payload(item.payload)
            whom = ", ".join(r.name for r in what.recipients)
            label = f"{what.event.value}{f' to {whom}' if whom else ''}"
        except (ValueError, KeyError, TypeError):
            label = "a notification"
        with contextlib.suppress(IncidentError):  # an incident that is gone: nothing to tell
            await self.incidents.note(
                incident, "dead_letter", f"not delivered via {item.notifier}: {label}, {reason}"
            )


def _each(configs: Mapping[str, NotifierConfigBase], field: str) -> dict[str, timedelta]:
    return {name: getattr(c, field) for name, c in configs.items()}
