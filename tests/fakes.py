"""Test doubles: a clock that only moves when told to, and helpers around it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["FakeClock", "settle"]


async def settle(rounds: int = 50) -> None:
    """Lets every ready callback run (a few loop iterations)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """A `Clock` whose time moves only in `advance()`; sleepers wake in deadline order."""

    def __init__(self, start: datetime = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)) -> None:
        self._wall0 = start
        self._t = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._t:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Moves time forward, waking each sleeper at its own deadline in turn."""
        target = self._t + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
                await settle()
        self._t = target
        await settle()


class MemoryStore:
    """A `Store` in memory, for logic tests (the SQLite one is tested on its own)."""

    def __init__(self) -> None:
        from monitor.core.alertstate import CheckState
        from monitor.core.model import Incident, Silence, TimelineEntry

        self.states: dict[str, CheckState] = {}
        self.incidents: dict[int, Incident] = {}
        self.entries: list[TimelineEntry] = []
        self.silences: dict[int, Silence] = {}
        self.escalations: dict[int, Any] = {}
        self.outbox: dict[int, Any] = {}
        self.kv: dict[str, str] = {}
        self._ids = itertools.count(1)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load_check_states(self):
        return dict(self.states)

    async def save_check_state(self, check, state) -> None:
        self.states[check] = state

    async def delete_check_states(self, checks) -> None:
        for check in checks:
            self.states.pop(check, None)

    async def create_incident(self, incident, entries):
        from dataclasses import replace

        new = replace(incident, id=next(self._ids))
        self.incidents[new.id] = new
        self.entries += [replace(e, incident_id=new.id) for e in entries]
        return new

    async def update_incident(self, incident, entries) -> None:
        assert incident.id in self.incidents
        self.incidents[incident.id] = incident
        self.entries += list(entries)

    async def get_incident(self, incident_id):
        return self.incidents.get(incident_id)

    async def open_incident(self, key):
        return next((i for i in self.incidents.values() if i.key == key and i.is_open), None)

    async def latest_incident(self, key):
        found = [i for i in self.incidents.values() if i.key == key]
        return max(found, key=lambda i: (i.opened_at, i.id)) if found else None

    async def list_incidents(self, *, statuses=None, severities=None, limit=100):
        found = [
            i for i in self.incidents.values()
            if (statuses is None or i.status in set(statuses))
            and (severities is None or i.severity in set(severities))
        ]  # fmt: skip
        return sorted(found, key=lambda i: (i.opened_at, i.id), reverse=True)[:limit]

    async def timeline(self, incident_id):
        return [e for e in self.entries if e.incident_id == incident_id]

    async def repeat_entry(self, incident_id, events, at):
        from dataclasses import replace

        for i in range(len(self.entries) - 1, -1, -1):
            e = self.entries[i]
            if e.incident_id == incident_id and e.event in events:
                self.entries[i] = replace(e, count=e.count + 1, last_at=at)
                return self.entries[i]
        return None

    async def create_silence(self, silence):
        from dataclasses import replace

        new = replace(silence, id=next(self._ids))
        self.silences[new.id] = new
        return new

    async def list_silences(self, *, active_at=None):
        return [s for s in self.silences.values() if active_at is None or s.active(active_at)]

    async def expire_silence(self, silence_id, at):
        from dataclasses import replace

        if silence_id not in self.silences:
            return None
        self.silences[silence_id] = replace(self.silences[silence_id], expired_at=at)
        return self.silences[silence_id]

    # escalations, outbox, kv
    async def load_escalations(self):
        return sorted(self.escalations.values(), key=lambda e: e.incident_id)

    async def commit_escalation(self, incident_id, state, items) -> None:
        escalations = self.escalations
        if state is None:
            escalations.pop(incident_id, None)
        else:
            escalations[incident_id] = state
        await self.enqueue(items)

    async def enqueue(self, items) -> None:
        from dataclasses import replace

        outbox = self.outbox
        keys = {i.key for i in outbox.values()}
        for item in items:
            if item.key not in keys:
                new = replace(item, id=next(self._ids))
                outbox[new.id] = new
                keys.add(item.key)

    async def due_notifications(self, notifier, now, limit):
        outbox = self.outbox
        due = [
            i
            for i in outbox.values()
            if i.notifier == notifier and i.status == "pending" and i.next_attempt_at <= now
        ]
        return sorted(due, key=lambda i: (i.next_attempt_at, i.id))[:limit]

    async def next_notification_at(self, notifier):
        outbox = self.outbox
        times = [
            i.next_attempt_at
            for i in outbox.values()
            if i.notifier == notifier and i.status == "pending"
        ]
        return min(times) if times else None

    async def pending_notifications(self, notifier):
        pending = [
            i for i in self.outbox.values() if i.notifier == notifier and i.status == "pending"
        ]
        return sorted(pending, key=lambda i: i.id)

    async def settle_notifications(self, ids, status, items) -> None:
        from dataclasses import replace

        for i in ids:
            if (old := self.outbox.get(i)) is not None and old.status == "pending":
                self.outbox[i] = replace(old, status=status)
        await self.enqueue(items)

    async def update_notification(self, item) -> None:
        self.outbox[item.id] = item

    async def outbox_depth(self):
        pending = [i for i in self.outbox.values() if i.status == "pending"]
        return len(pending), min((i.created_at for i in pending), default=None)

    async def kv_get(self, key):
        return self.kv.get(key)

    async def kv_delete(self, keys) -> None:
        for key in keys:
            self.kv.pop(key, None)

    async def kv_prefix(self, prefix):
        return {k: v for k, v in self.kv.items() if k.startswith(prefix)}

    async def kv_set(self, key, value) -> None:
        self.kv[key] = value
