"""The `Store` protocol: everything the daemon must not forget across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitor.core.alertstate import CheckState
from monitor.core.errors import StoreError
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

__all__ = [
    "HOUR",
    "HOUR_RETENTION_S",
    "LATENCY_BOUNDS_MS",
    "MINUTE",
    "MINUTE_RETENTION_S",
    "HistoryBucket",
    "RunCounts",
    "SoleHolder",
    "Store",
    "StoreError",
    "claimable",
    "with_hours",
]

MINUTE, HOUR = 60, 3600  # the two resolutions of history, in seconds
MINUTE_RETENTION_S = 48 * HOUR  # minute rollups are kept 48 h
HOUR_RETENTION_S = 90 * 24 * HOUR  # hour rollups 90 days
# Upper bounds (ms) of the latency histogram's buckets; the last one is everything above.
LATENCY_BOUNDS_MS: tuple[int, ...] = (100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True, slots=True)
class HistoryBucket:
    """The runs of one check in one minute or hour (`resolution` seconds from `start`, a
    Unix time on that boundary). Every field adds up: two buckets of the same check and
    start merge by summing (`max_ms` by max). Latency counts the runs that saw the asset
    (not the blind ones): `latency` has one count per `LATENCY_BOUNDS_MS` bucket plus
    one for slower runs."""

    check: str
    resolution: int
    start: int
    up: int = 0
    degraded: int = 0
    down: int = 0
    blind: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0
    latency: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS_MS) + 1)

    @property
    def runs(self) -> int:
        return self.up + self.degraded + self.down + self.blind

    def merged(self, other: HistoryBucket) -> HistoryBucket:
        return HistoryBucket(
            self.check, self.resolution, self.start,
            self.up + other.up, self.degraded + other.degraded, self.down + other.down,
            self.blind + other.blind, self.sum_ms + other.sum_ms,
            max(self.max_ms, other.max_ms),
            tuple(a + b for a, b in zip(self.latency, other.latency, strict=True)),
        )  # fmt: skip

    def at(self, resolution: int) -> HistoryBucket:
        """The same counts filed under the bucket of `resolution` that holds `start`."""
        return HistoryBucket(
            self.check, resolution, self.start - self.start % resolution, self.up,
            self.degraded, self.down, self.blind, self.sum_ms, self.max_ms, self.latency,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunCounts:
    """How the runs of some checks over some time ended, summed (`Store.count_runs`)."""

    up: int = 0
    degraded: int = 0
    down: int = 0
    blind: int = 0

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(self.up + other.up, self.degraded + other.degraded,
                         self.down + other.down, self.blind + other.blind)  # fmt: skip


def with_hours(buckets: Sequence[HistoryBucket]) -> list[HistoryBucket]:
    """The minute buckets, then the hour buckets they add up to (one per check and hour)."""
    hours: dict[tuple[str, int], HistoryBucket] = {}
    minutes: dict[tuple[str, int], HistoryBucket] = {}
    for b in buckets:
        m = b.at(MINUTE)
        key = (m.check, m.start)
        minutes[key] = minutes[key].merged(m) if key in minutes else m
        h = b.at(HOUR)
        key = (h.check, h.start)
        hours[key] = hours[key].merged(h) if key in hours else h
    return [*minutes.values(), *hours.values()]


class Store(Protocol):
    """Async so that a networked backend fits; the SQLite one answers without waiting.

    Every method that changes an incident writes the incident row and its new timeline
    entries in one transaction: a crash leaves both or neither.
    """

    async def open(self) -> None:
        """Creates or migrates the schema (numbered migrations, applied in order)."""
        ...

    async def close(self) -> None: ...

    # Alert state per check.
    async def load_check_states(self) -> dict[str, CheckState]: ...

    async def save_check_state(self, check: str, state: CheckState) -> None: ...

    async def delete_check_states(self, checks: Iterable[str]) -> None: ...

    # Incidents and their timelines.
    async def create_incident(
        self, incident: Incident, entries: Sequence[TimelineEntry]
    ) -> Incident:
        """Inserts `incident` (its `id` is ignored) with `entries` (their `incident_id` is
        ignored); returns the incident with its new id."""
        ...

    async def update_incident(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        """Replaces the row with id `incident.id` and appends `entries` to that incident's
        timeline (their own `incident_id` is ignored). StoreError if there is no such row."""
        ...

    async def get_incident(self, incident_id: int) -> Incident | None: ...

    async def open_incident(self, key: str) -> Incident | None:
        """The incident with this dedup key that is not resolved, if any."""
        ...

    async def latest_incident(self, key: str) -> Incident | None:
        """The most recently opened incident with this key, whatever its status."""
        ...

    async def list_incidents(
        self,
        *,
        statuses: Iterable[IncidentStatus] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Newest first."""
        ...

    async def resolved_incidents(
        self,
        since: datetime,
        *,
        sources: Iterable[IncidentSource] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Resolved incidents with `resolved_at >= since` (of `sources` and `severities`
        when given), the most recently resolved first, at most `limit`."""
        ...

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        """Oldest first."""
        ...

    async def repeat_entry(
        self, incident_id: int, events: Sequence[str], at: datetime
    ) -> TimelineEntry | None:
        """Counts one more of the latest entry among `events` (count + 1, last_at = at);
        None when the incident has no such entry."""
        ...

    # Silences.
    async def create_silence(self, silence: Silence) -> Silence:
        """Inserts `silence` (its `id` is ignored); returns it with its new id."""
        ...

    async def list_silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        """All silences, or those active at `active_at`."""
        ...

    async def expire_silence(self, silence_id: int, at: datetime) -> Silence | None:
        """Ends a silence early; None if there is no such silence."""
        ...

    # Escalation positions and the notification outbox.
    async def load_escalations(self) -> list[EscalationState]: ...

    async def commit_escalation(
        self, incident_id: int, state: EscalationState | None, items: Sequence[OutboxItem]
    ) -> None:
        """In one transaction: stores the incident's escalation position (None deletes it)
        and enqueues `items`. An item whose key is already in the outbox is skipped, so a
        step that runs again after a crash pages nobody twice."""
        ...

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        """Adds notifications; keys already present are skipped."""
        ...

    async def due_notifications(self, notifier: str, now: datetime, limit: int) -> list[OutboxItem]:
        """Pending notifications of `notifier` due by `now`, oldest first."""
        ...

    async def next_notification_at(self, notifier: str) -> datetime | None:
        """When the earliest pending notification of `notifier` is due."""
        ...

    async def pending_notifications(self, notifier: str) -> list[OutboxItem]:
        """Every pending notification of `notifier`, in the order they were enqueued."""
        ...

    async def settle_notifications(
        self, ids: Sequence[int], status: OutboxStatus, items: Sequence[OutboxItem]
    ) -> None:
        """In one transaction: gives the notifications `ids` that are still pending the
        final `status` (e.g. `superseded`) and enqueues `items` (keys present skipped)."""
        ...

    async def update_notification(self, item: OutboxItem) -> None:
        """Writes back attempts, status, next attempt, sent time and last error."""
        ...

    async def outbox_depth(self) -> tuple[int, datetime | None]:
        """Pending notifications, and when the oldest of them was created."""
        ...

    # Paging among replicas that share one store: one leader at a time holds the lease
    # and its fencing token; only it advances escalations and sends. A store that is one
    # daemon's own (SQLite, memory) is always the holder: each `acquire_lease` hands out
    # the next token, and only the latest token passes the fence.
    async def acquire_lease(self, holder: str, *, wait_s: float = 0.0) -> int | None:
        """Tries to take the paging lease for `holder` (a replica id): the new fencing
        token (greater than every earlier one), or None while another holder has it.
        `wait_s`: a store shared by replicas may wait up to that long for the holder to
        let go (the first to ask takes it the moment it does); others answer at once."""
        ...

    async def renew_lease(self) -> bool:
        """Whether the lease this store took is still held; False: lost (take it again)."""
        ...

    async def release_lease(self) -> None:
        """Gives the lease up (a clean stop), so another replica takes it at once."""
        ...

    async def claim_notifications(self, ids: Sequence[int], token: int) -> list[int] | None:
        """In one transaction: checks that `token` is the current lease's and its holder
        still holds it (the fence), then claims the notifications among `ids` that are
        still pending and not being claimed by another transaction at this moment (row
        locks, skipped when taken). The ids claimed; None when the token is fenced out."""
        ...

    async def claim_due(
        self, notifier: str, now: datetime, token: int, limit: int
    ) -> list[OutboxItem] | None:
        """The fence (see `claim_notifications`) and, in the same statement, claims up to
        `limit` notifications of `notifier` that may go now: pending, due by `now`, the
        oldest pending one of their incident for the notifier (keys `incident:<id>:…`;
        others wait for nothing), not being claimed by another transaction (row locks,
        skipped when taken); oldest first. The claimed rows; None when `token` is fenced
        out. The leader's one round trip between hearing of a page and sending it."""
        ...

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
        """`commit_escalation`, only if the stored escalation of the incident is
        `expected` (None: there is none) and, with a `token`, the token passes the fence
        (see `claim_notifications`), checked in the same transaction. False: nothing was
        written (another replica changed the escalation, or the leader was deposed).
        `tell`: when it writes, `notify_change(tell)` goes with it (same transaction)."""
        ...

    async def database_now(self) -> datetime | None:
        """The store's own clock (PostgreSQL: the server's), the one time the replicas of
        a fleet agree on; None for a store that is one daemon's own."""
        ...

    async def notify_change(self, sender: str) -> None:
        """Tells the other replicas that paging state changed (escalations, outbox)."""
        ...

    async def wait_changes(self, timeout_s: float, listener: str) -> bool:
        """Waits up to `timeout_s` for a change told by a replica other than `listener`;
        whether one came. Without other replicas nothing comes."""
        ...

    # A small key-value space for notifiers (e.g. the Slack thread of an incident) and
    # the last known good state of each check (`lastgood:<check>`).
    async def kv_get(self, key: str) -> str | None: ...

    async def kv_delete(self, keys: Iterable[str]) -> None: ...

    async def kv_prefix(self, prefix: str) -> dict[str, str]:
        """Every key starting with `prefix`, with its value."""
        ...

    async def kv_set(self, key: str, value: str) -> None: ...

    # Run history: per check, minute rollups (48 h) and hour rollups (90 days).
    async def add_history(self, buckets: Sequence[HistoryBucket]) -> None:
        """In one transaction: adds each minute bucket to its stored minute row and to the
        hour row that holds it (created as needed). Adding is the merge, so a minute
        written in two parts (a flush, then a restart) counts every run once."""
        ...

    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]:
        """The check's buckets of `resolution` with `since <= start < until`, oldest first."""
        ...

    async def count_runs(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> RunCounts:
        """The outcome counts of the `checks`' buckets of `resolution` with
        `since <= start < until`, summed by the store (no row leaves it)."""

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]:
        """The check's hour rows with `since <= start < until` added up per period of
        `size` seconds (a multiple of an hour; periods counted from the Unix epoch, so a
        day is a UTC day), oldest first: one bucket of resolution `size` per period that
        has rows. The status page reads 90 days this way, 90 rows instead of 2,160."""
        ...

    async def read_history_of(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        """`read_history` of each of `checks` in one call: check → its buckets, oldest
        first (a check without any is absent)."""
        ...

    async def read_history_totals_of(
        self, checks: Sequence[str], size: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        """`read_history_totals` of each of `checks` in one call: check → its periods,
        oldest first (a check without any is absent)."""
        ...

    async def prune_history(self, now: int) -> None:
        """Deletes minute rows older than `MINUTE_RETENTION_S` and hour rows older than
        `HOUR_RETENTION_S` before `now` (Unix seconds)."""
        ...

    async def delete_history(self, checks: Iterable[str]) -> None: ...


class _ReadsPerCheck(Protocol):
    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]: ...

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]: ...


class LocalHistoryReads:
    """`read_history_of` and `read_history_totals_of` as one read per check, for a store
    where a call costs no round trip (SQLite, memory); checks without buckets left out."""

    async def read_history_of(
        self: _ReadsPerCheck, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        found = {c: await self.read_history(c, resolution, since, until) for c in checks}
        return {c: buckets for c, buckets in found.items() if buckets}

    async def read_history_totals_of(
        self: _ReadsPerCheck, checks: Sequence[str], size: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        found = {c: await self.read_history_totals(c, size, since, until) for c in checks}
        return {c: buckets for c, buckets in found.items() if buckets}


class SoleHolder:
    """The paging lease of a store that is one daemon's own (SQLite, memory): it is
    always the holder, each `acquire_lease` hands out the next token and only the latest
    passes the fence. No other replica writes, so no change is ever told."""

    _token = 0
    _held = False

    async def acquire_lease(self, holder: str, *, wait_s: float = 0.0) -> int | None:
        self._token += 1
        self._held = True
        return self._token

    async def renew_lease(self) -> bool:
        return self._held

    async def release_lease(self) -> None:
        self._held = False

    def _claim_due(
        self, pending: Sequence[OutboxItem], now: datetime, token: int, limit: int
    ) -> list[OutboxItem] | None:
        """`claim_due` from the notifier's pending notifications, oldest first: no other
        process claims here, the fence is the whole claim."""
        return None if self._fenced(token) else claimable(pending, now)[: max(0, limit)]

    def _fenced(self, token: int | None) -> bool:
        """Whether `token` fails the fence (None: no fence asked)."""
        return token is not None and not (self._held and token == self._token)

    async def database_now(self) -> datetime | None:
        return None

    async def notify_change(self, sender: str) -> None:
        return None

    async def wait_changes(self, timeout_s: float, listener: str) -> bool:
        await asyncio.sleep(timeout_s)
        return False


def claimable(pending: Sequence[OutboxItem], now: datetime) -> list[OutboxItem]:
    """Of a notifier's pending notifications (oldest first), those that may go now: due
    by `now` and the oldest pending one of their incident (keys `incident:<id>:…`)."""
    seen: set[str] = set()
    heads = []
    for item in pending:
        parts = item.key.split(":", 2)
        if len(parts) == 3 and parts[0] == "incident" and parts[1].isdigit():
            if parts[1] in seen:
                continue
            seen.add(parts[1])
        if item.next_attempt_at <= now:
            heads.append(item)
    return heads
