"""Test doubles: a clock that only moves when told to, and helpers around it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.core.alertstate import CheckState
from monitor.core.model import (
    EscalationState,
    Incident,
    IncidentSource,
    IncidentStatus,
    OutboxItem,
    OutboxStatus,
    Severity,
    Silence,
    TimelineEntry,
)
from monitor.store import StoreError
from monitor.store.base import (
    HOUR,
    HOUR_RETENTION_S,
    MINUTE,
    MINUTE_RETENTION_S,
    HistoryBucket,
    LocalHistoryReads,
    RunCounts,
    SoleHolder,
    with_hours,
)

__all__ = ["FakeClock", "MemoryStore", "settle"]


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


class MemoryStore(SoleHolder, LocalHistoryReads):
    """A `Store` in memory, for logic tests. It keeps the contract the SQLite store keeps
    (`tests/test_store_contract.py`): one open incident per key, timeline entries filed
    under their incident, nothing once closed."""

    def __init__(self) -> None:
        self.states: dict[str, CheckState] = {}
        self.incidents: dict[int, Incident] = {}
        self.entries: list[TimelineEntry] = []
        self.silences: dict[int, Silence] = {}
        self.escalations: dict[int, EscalationState] = {}
        self.outbox: dict[int, OutboxItem] = {}
        self.kv: dict[str, str] = {}
        self.history: dict[tuple[str, int, int], HistoryBucket] = {}
        self._ids = itertools.count(1)
        self._closed = False

    def _live(self) -> None:
        if self._closed:
            raise StoreError("memory store is closed")

    async def open(self) -> None:
        self._live()

    async def close(self) -> None:
        self._closed = True

    async def load_check_states(self) -> dict[str, CheckState]:
        self._live()
        return dict(self.states)

    async def save_check_state(self, check: str, state: CheckState) -> None:
        self._live()
        self.states[check] = state

    async def delete_check_states(self, checks: Iterable[str]) -> None:
        self._live()
        for check in checks:
            self.states.pop(check, None)

    async def add_history(self, buckets: Sequence[HistoryBucket]) -> None:
        self._live()
        for b in with_hours(buckets):
            key = (b.check, b.resolution, b.start)
            self.history[key] = self.history[key].merged(b) if key in self.history else b

    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]:
        self._live()
        return sorted(
            (b for (c, r, s), b in self.history.items()
             if c == check and r == resolution and since <= s < until),
            key=lambda b: b.start,
        )  # fmt: skip

    async def count_runs(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> RunCounts:
        self._live()
        total = RunCounts()
        for (c, r, s), b in self.history.items():
            if c in checks and r == resolution and since <= s < until:
                total += RunCounts(b.up, b.degraded, b.down, b.blind)
        return total

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]:
        totals: dict[int, HistoryBucket] = {}
        for b in await self.read_history(check, HOUR, since, until):
            t = b.at(size)
            totals[t.start] = totals[t.start].merged(t) if t.start in totals else t
        return [totals[k] for k in sorted(totals)]

    async def prune_history(self, now: int) -> None:
        self._live()
        keep = {MINUTE: MINUTE_RETENTION_S, HOUR: HOUR_RETENTION_S}
        for key in [k for k in self.history if k[2] < now - keep[k[1]]]:
            del self.history[key]

    async def delete_history(self, checks: Iterable[str]) -> None:
        self._live()
        gone = set(checks)
        for key in [k for k in self.history if k[0] in gone]:
            del self.history[key]

    def _one_open(self, incident: Incident) -> None:
        """An open incident may not join another open one of its key (SQLite's index)."""
        if incident.is_open and any(
            i.key == incident.key and i.is_open and i.id != incident.id
            for i in self.incidents.values()
        ):
            raise StoreError(f"an incident for {incident.key!r} is already open")

    async def create_incident(
        self, incident: Incident, entries: Sequence[TimelineEntry]
    ) -> Incident:
        self._live()
        new = replace(incident, id=next(self._ids))
        self._one_open(new)
        self.incidents[new.id] = new
        self.entries += [replace(e, incident_id=new.id) for e in entries]
        return new

    async def update_incident(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        self._live()
        if incident.id not in self.incidents:
            raise StoreError(f"no incident {incident.id} to update")
        self._one_open(incident)
        self.incidents[incident.id] = incident
        self.entries += [replace(e, incident_id=incident.id) for e in entries]

    async def get_incident(self, incident_id: int) -> Incident | None:
        self._live()
        return self.incidents.get(incident_id)

    async def open_incident(self, key: str) -> Incident | None:
        self._live()
        return next((i for i in self.incidents.values() if i.key == key and i.is_open), None)

    async def latest_incident(self, key: str) -> Incident | None:
        self._live()
        found = [i for i in self.incidents.values() if i.key == key]
        return max(found, key=lambda i: (i.opened_at, i.id)) if found else None

    async def list_incidents(
        self,
        *,
        statuses: Iterable[IncidentStatus] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        self._live()
        wanted = None if statuses is None else set(statuses)
        levels = None if severities is None else set(severities)
        found = [
            i for i in self.incidents.values()
            if (wanted is None or i.status in wanted) and (levels is None or i.severity in levels)
        ]  # fmt: skip
        return sorted(found, key=lambda i: (i.opened_at, i.id), reverse=True)[:limit]

    async def resolved_incidents(
        self,
        since: datetime,
        *,
        sources: Iterable[IncidentSource] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        self._live()
        kinds = None if sources is None else set(sources)
        levels = None if severities is None else set(severities)
        found = [
            i for i in self.incidents.values()
            if i.status is IncidentStatus.RESOLVED and i.resolved_at is not None
            and i.resolved_at >= since and (kinds is None or i.source in kinds)
            and (levels is None or i.severity in levels)
        ]  # fmt: skip
        found.sort(key=lambda i: (i.resolved_at, i.id), reverse=True)
        return found[: max(0, limit)]

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        self._live()
        return [e for e in self.entries if e.incident_id == incident_id]

    async def repeat_entry(
        self, incident_id: int, events: Sequence[str], at: datetime
    ) -> TimelineEntry | None:
        self._live()
        for i in range(len(self.entries) - 1, -1, -1):
            e = self.entries[i]
            if e.incident_id == incident_id and e.event in events:
                self.entries[i] = replace(e, count=e.count + 1, last_at=at)
                return self.entries[i]
        return None

    async def create_silence(self, silence: Silence) -> Silence:
        self._live()
        new = replace(silence, id=next(self._ids))
        self.silences[new.id] = new
        return new

    async def list_silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        self._live()
        return [s for s in self.silences.values() if active_at is None or s.active(active_at)]

    async def expire_silence(self, silence_id: int, at: datetime) -> Silence | None:
        self._live()
        if silence_id not in self.silences:
            return None
        self.silences[silence_id] = replace(self.silences[silence_id], expired_at=at)
        return self.silences[silence_id]

    async def load_escalations(self) -> list[EscalationState]:
        self._live()
        return sorted(self.escalations.values(), key=lambda e: e.incident_id)

    async def commit_escalation(
        self, incident_id: int, state: EscalationState | None, items: Sequence[OutboxItem]
    ) -> None:
        self._live()
        if state is None:
            self.escalations.pop(incident_id, None)
        else:
            self.escalations[incident_id] = state
        await self.enqueue(items)

    async def swap_escalation(
        self,
        incident_id: int,
        expected: EscalationState | None,
        state: EscalationState | None,
        items: Sequence[OutboxItem],
        token: int | None,
        *,
        tell: str | None = None,
    ) -> bool:
        self._live()
        if self._fenced(token) or self.escalations.get(incident_id) != expected:
            return False
        await self.commit_escalation(incident_id, state, items)
        return True

    async def claim_due(
        self, notifier: str, now: datetime, token: int, limit: int
    ) -> list[OutboxItem] | None:
        self._live()
        return self._claim_due(await self.pending_notifications(notifier), now, token, limit)

    async def claim_notifications(self, ids: Sequence[int], token: int) -> list[int] | None:
        self._live()
        if self._fenced(token):
            return None
        return sorted(
            i for i in set(ids) if (o := self.outbox.get(i)) and o.status is OutboxStatus.PENDING
        )

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        self._live()
        keys = {i.key for i in self.outbox.values()}
        for item in items:
            if item.key not in keys:
                new = replace(item, id=next(self._ids))
                self.outbox[new.id] = new
                keys.add(item.key)

    async def due_notifications(self, notifier: str, now: datetime, limit: int) -> list[OutboxItem]:
        self._live()
        due = [
            i for i in self.outbox.values()
            if i.notifier == notifier and i.status is OutboxStatus.PENDING and i.next_attempt_at <= now
        ]  # fmt: skip
        return sorted(due, key=lambda i: (i.next_attempt_at, i.id))[:limit]

    async def next_notification_at(self, notifier: str) -> datetime | None:
        self._live()
        times = [
            i.next_attempt_at
            for i in self.outbox.values()
            if i.notifier == notifier and i.status is OutboxStatus.PENDING
        ]
        return min(times) if times else None

    async def pending_notifications(self, notifier: str) -> list[OutboxItem]:
        self._live()
        pending = [
            i
            for i in self.outbox.values()
            if i.notifier == notifier and i.status is OutboxStatus.PENDING
        ]
        return sorted(pending, key=lambda i: i.id)

    async def settle_notifications(
        self, ids: Sequence[int], status: OutboxStatus, items: Sequence[OutboxItem]
    ) -> None:
        self._live()
        for i in ids:
            if (old := self.outbox.get(i)) is not None and old.status is OutboxStatus.PENDING:
                self.outbox[i] = replace(old, status=status)
        await self.enqueue(items)

    async def update_notification(self, item: OutboxItem) -> None:
        self._live()
        self.outbox[item.id] = item

    async def outbox_depth(self) -> tuple[int, datetime | None]:
        self._live()
        pending = [i for i in self.outbox.values() if i.status is OutboxStatus.PENDING]
        return len(pending), min((i.created_at for i in pending), default=None)

    async def kv_get(self, key: str) -> str | None:
        self._live()
        return self.kv.get(key)

    async def kv_delete(self, keys: Iterable[str]) -> None:
        self._live()
        for key in keys:
            self.kv.pop(key, None)

    async def kv_prefix(self, prefix: str) -> dict[str, str]:
        self._live()
        return {k: v for k, v in self.kv.items() if k.startswith(prefix)}

    async def kv_set(self, key: str, value: str) -> None:
        self._live()
        self.kv[key] = value
