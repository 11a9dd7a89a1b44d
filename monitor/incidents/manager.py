"""Incidents: opened from failing checks or by hand, acknowledged, resolved, never forgotten.

`IncidentManager` owns every change to an incident. It writes each change to the store
(the incident row and its timeline lines in one transaction) before anything else sees
it, and keeps the open incidents in memory so that a healthy probe costs no store read.
All changes go through one lock, so racing API calls (ack against resolve) leave a
consistent incident and timeline.

In a fleet (`shared`: the store is one database for several replicas) the cache is only a
copy: another replica may acknowledge, resolve or open any incident. Every change then
starts from the store's row, read inside the lock, never from the cache, so a stale copy
cannot undo another replica's change; `reload()` (on the store's change feed, and every
beat as a safety net) brings the cache, and what it serves, up to date.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from monitor.core.alertstate import AlertState
from monitor.core.clock import Clock
from monitor.core.errors import IncidentConflict, IncidentError, IncidentInvalid, IncidentNotFound
from monitor.core.model import (
    CheckResult,
    Incident,
    IncidentEvent,
    IncidentSource,
    IncidentStatus,
    Severity,
    Suppression,
    TimelineEntry,
)
from monitor.incidents.public import (
    MAX_HISTORY,
    MAX_PUBLIC_NOTE,
    PUBLIC_SOURCES,
    PublicIncident,
    public_incident,
)
from monitor.metrics.exporter import Metrics
from monitor.store import Store

__all__ = ["HEALTH_SOURCE", "CheckEvent", "IncidentError", "IncidentManager"]


class _Unread(enum.Enum):
    UNREAD = enum.auto()


UNREAD = _Unread.UNREAD  # not read yet (None: read, and there is none)

# Incidents read back at once on a notice (each on its own pooled connection).
_READ_AT_ONCE = 4

log = structlog.stdlib.get_logger(__name__)

MONITOR = "monitor"  # the actor of everything the daemon does by itself
HEALTH_SOURCE = IncidentSource.MONITOR_HEALTH  # incidents about the monitor's own sight
# Timeline events that say what a check saw; the same thing seen again is counted on them.
_SEEN = ("opened", "reopened", "failure")
# Timeline entries of a still-failing check that listeners hear about.
_TOLD = frozenset(
    {IncidentEvent.SEVERITY_RAISED, IncidentEvent.SUPPRESSED, IncidentEvent.UNSUPPRESSED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckEvent:
    """What the pipeline hands over after classifying one result."""

    check: str
    key: str
    title: str
    result: CheckResult
    state: AlertState
    previous: AlertState
    severity: Severity | None
    rule: str
    auto_resolve: bool = True
    suppressed: Suppression | None = None
    # `lastgood.advice` for a failing result; None: nothing known (or a passing run).
    last_good: Mapping[str, Any] | None = None

    @property
    def failing(self) -> bool:
        """Down or degraded; blind only when a rule opted in (gave it a severity)."""
        if self.state is AlertState.BLIND:
            return self.severity is not None
        return self.state in (AlertState.DOWN, AlertState.DEGRADED)


class IncidentManager:
    """The only writer of incidents. Call `load()` once before use."""

    def __init__(
        self, store: Store, clock: Clock, metrics: Metrics, *, cooldown: timedelta
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.cooldown = cooldown
        self._open: dict[str, Incident] = {}  # key → open incident (cache of the store)
        self.shared = False  # other replicas change incidents too: changes re-read the store
        self._lock = asyncio.Lock()
        # Called after every change is stored: (incident, event, actor). Paging listens here.
        self.listeners: list[Callable[[Incident, IncidentEvent, str], Awaitable[None]]] = []

    async def _tell(self, incident: Incident, event: IncidentEvent, actor: str = MONITOR) -> None:
        for listener in self.listeners:
            try:
                await listener(incident, event, actor)
            except Exception:  # a listener's bug must not undo a stored change
                log.exception("incident_listener_failed", incident_id=incident.id, change=event)

    async def load(self) -> None:
        """Reads the open incidents back after a start or restart."""
        open_ = await self.store.list_incidents(
            statuses=(IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED), limit=1_000_000
        )
        self._open = {i.key: i for i in open_}
        self._export()

    async def reload(self) -> None:
        """Reads the open incidents back from the store: in a fleet, what other replicas
        opened, acknowledged or resolved since (StoreError when it cannot answer). The read
        holds the lock: a change made here meanwhile is never replaced by an older list."""
        async with self._lock:
            open_ = await self.store.list_incidents(
                statuses=(IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED), limit=1_000_000
            )
            self._open = {i.key: i for i in open_}
            self._export()

    async def reload_ids(self, incident_ids: Iterable[int]) -> None:
        """Reads these incidents back from the store (told that they changed on another
        replica), under the lock like `reload`: one row each, not every open incident."""
        async with self._lock:
            ids = sorted(set(incident_ids))
            found: list[Incident | None] = []
            for at in range(0, len(ids), _READ_AT_ONCE):
                # A few at once (one round trip of waiting each), applied in order.
                batch = ids[at : at + _READ_AT_ONCE]
                found += await asyncio.gather(*(self.store.get_incident(i) for i in batch))
            for incident in found:
                if incident is None:
                    continue
                cached = self._open.get(incident.key)
                if incident.is_open:
                    self._open[incident.key] = incident
                elif cached is not None and cached.id == incident.id:
                    del self._open[incident.key]
            self._export()

    async def _current(self, key: str) -> Incident | None:
        """The open incident of `key`: the cache's, or in a fleet the store's (the cache
        follows what it finds)."""
        if not self.shared:
            return self._open.get(key)
        found = await self.store.open_incident(key)
        if found is None:
            self._open.pop(key, None)
        else:
            self._open[key] = found
        return found

    async def refresh(self) -> None:
        """Reads the open incidents again, between changes: other replicas sharing the
        store open, acknowledge and resolve incidents too (the pager's notices)."""
        await self.reload()

    async def adopt(self, keys: Sequence[str]) -> None:
        """Reads the open incidents of `keys` back from the store: another replica of a
        fleet may have opened or closed them since `load()`."""
        if not keys:
            return
        open_ = await self.store.list_incidents(
            statuses=(IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED), limit=1_000_000
        )
        found = {i.key: i for i in open_}
        async with self._lock:
            for key in keys:
                if key in found:
                    self._open[key] = found[key]
                else:
                    self._open.pop(key, None)
            self._export()

    def open_for(self, key: str) -> Incident | None:
        return self._open.get(key)

    @property
    def open_incidents(self) -> list[Incident]:
        return sorted(self._open.values(), key=lambda i: i.id)

    # --- reads for the API ----------------------------------------------------------

    async def find(
        self,
        *,
        statuses: Sequence[IncidentStatus] | None = None,
        severities: Sequence[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents open or closed, newest first, as the store lists them."""
        return await self.store.list_incidents(
            statuses=statuses, severities=severities, limit=limit
        )

    async def get(self, incident_id: int) -> tuple[Incident, list[TimelineEntry]]:
        """One incident and its timeline; `IncidentNotFound` when there is none."""
        incident = await self.store.get_incident(incident_id)
        if incident is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return incident, await self.store.timeline(incident_id)

    async def public_history(
        self, since: datetime, limit: int = MAX_HISTORY
    ) -> list[PublicIncident]:
        """The resolved incidents of the assets resolved since `since`, last resolved first,
        as the public may see them (`incidents.public`); at most `limit`."""
        found = await self.store.resolved_incidents(
            since, sources=PUBLIC_SOURCES, severities=list(Severity), limit=limit
        )
        return [p for p in map(public_incident, found) if p is not None]

    # --- from checks -----------------------------------------------------------------

    async def on_check(self, event: CheckEvent) -> Incident | None:
        """Opens, updates, reopens or resolves the incident for the event's key."""
        current = self._open.get(event.key)
        if current is None and not (event.failing and event.severity is not None):
            return None  # the common case: healthy, or failing but ignored, and nothing open
        async with self._lock:
            latest: Incident | _Unread | None = UNREAD
            if self.shared and current is None and event.failing and event.severity is not None:
                # About to open one, most likely: the open incident and the latest one are
                # read at once, on two connections (one round trip of waiting, not two).
                current, latest = await asyncio.gather(
                    self.store.open_incident(event.key), self.store.latest_incident(event.key)
                )
                if current is not None:
                    self._open[event.key] = current
            else:
                current = await self._current(event.key)
            now = self.clock.now()
            if current is None:
                if event.failing and event.severity is not None:
                    return await self._open_or_reopen(event, now, latest)
                return None
            if event.failing:
                return await self._still_failing(current, event, now)
            if event.state is AlertState.UP and event.previous is not AlertState.UP:
                return await self._recovered(current, event, now)
            if event.state is AlertState.BLIND and event.previous is not AlertState.BLIND:
                # Nothing is known about the asset: the incident stays as it was.
                incident = replace(current, updated_at=now)
                text = f"the monitor cannot see the check: {event.result.message}"
                await self._write(incident, [self._entry(current, now, "blind", text)])
                return incident
            return current

    async def monitor_health(
        self, key: str, title: str, message: str, checks: Sequence[str], *, back: str = ""
    ) -> Incident | None:
        """Opens or updates the monitor-health incident `key` (checks blind for one cause);
        resolves it when `checks` is empty: the monitor sees again (or what `back` says)."""
        async with self._lock:
            current = await self._current(key)
            now = self.clock.now()
            if not checks:
                if current is None:
                    return None
                if back:
                    seen = self._entry(current, now, "replica_back", back)
                    return await self._resolve(current, MONITOR, now, [seen], back)
                seen = self._entry(current, now, "sight_restored", "every check sees again")
                return await self._resolve(current, MONITOR, now, [seen], "the monitor sees again")
            if current is None and (current := await self.store.open_incident(key)) is not None:
                self._open[key] = current  # opened by another replica of a fleet
            if current is not None:
                if current.title == title and current.message == message:
                    return current
                incident = replace(current, title=title, message=message, updated_at=now)
                entry = self._entry(incident, now, "blind_checks", message, checks=list(checks))
                await self._write(incident, [entry])
                return incident
            incident = Incident(
                id=0, key=key, title=title, status=IncidentStatus.TRIGGERED,
                severity=Severity.P2, opened_at=now, updated_at=now, source=HEALTH_SOURCE,
                message=message,
            )  # fmt: skip
            entry = self._entry(incident, now, "opened", message, checks=list(checks))
            incident = await self.store.create_incident(incident, [entry])
            self._open[key] = incident
            self.metrics.incidents_opened.labels(str(incident.severity)).inc()
            log.warning("monitor_health_opened", incident_id=incident.id, key=key, title=title)
            self._export()
        await self._tell(incident, IncidentEvent.OPENED)
        return incident

    async def _open_or_reopen(
        self, event: CheckEvent, now: datetime, known: Incident | _Unread | None = UNREAD
    ) -> Incident:
        """`known`: the key's latest incident (None: it has none) when the caller read it."""
        assert event.severity is not None  # noqa: S101  checked by the caller
        latest = await self.store.latest_incident(event.key) if known is UNREAD else known
        result = event.result
        if (
            latest is not None
            and latest.resolved_at is not None
            and now - latest.resolved_at <= self.cooldown
        ):
            # Flapping: the same incident comes back instead of a new one paging anew.
            incident = replace(
                latest,
                status=IncidentStatus.TRIGGERED,
                resolved_at=None,
                acknowledged_at=None,
                updated_at=now,
                reopened=latest.reopened + 1,
                severity=event.severity
                if event.severity.worse_than(latest.severity)
                else latest.severity,
                failure=result.failure.value if result.failure else None,
                message=result.message,
                suppressed=_text(event.suppressed),
                last_good=event.last_good or latest.last_good,
            )
            entries = [self._entry(incident, now, "reopened",
                                   f"failing again {_ago(now - latest.resolved_at)} after it was resolved: {result.message}",
                                   rule=event.rule)]  # fmt: skip
            entries += self._suppression_entries(None, incident.suppressed, incident, now)
            entries += self._confirmation_entries(incident, now, result)
            await self.store.update_incident(incident, entries)
            self._open[incident.key] = incident
            log.warning("incident_reopened", incident_id=incident.id, check=event.check,
                        severity=incident.severity)  # fmt: skip
            self._export()
            await self._tell(incident, IncidentEvent.REOPENED)
            return incident
        incident = Incident(
            id=0,
            key=event.key,
            title=event.title,
            status=IncidentStatus.TRIGGERED,
            severity=event.severity,
            opened_at=now,
            updated_at=now,
            check=event.check,
            source=IncidentSource.CHECK,
            rule=event.rule,
            failure=result.failure.value if result.failure else None,
            message=result.message,
            suppressed=_text(event.suppressed),
            auto_resolve=event.auto_resolve,
            last_good=event.last_good,
        )
        entries = [
            self._entry(incident, now, "opened",
                        f"{event.severity} by rule {event.rule}: {result.message}",
                        rule=event.rule, failure=incident.failure, state=event.state.value),
        ]  # fmt: skip
        entries += self._suppression_entries(None, incident.suppressed, incident, now)
        entries += self._confirmation_entries(incident, now, result)
        incident = await self.store.create_incident(incident, entries)
        self._open[incident.key] = incident
        self.metrics.incidents_opened.labels(str(incident.severity)).inc()
        if event.suppressed is not None:
            self.metrics.suppressed.labels(event.suppressed.kind.value).inc()
        log.warning("incident_opened", incident_id=incident.id, check=event.check,
                    severity=incident.severity, suppressed=incident.suppressed)  # fmt: skip
        self._export()
        await self._tell(incident, IncidentEvent.OPENED)
        return incident

    async def _still_failing(self, current: Incident, event: CheckEvent, now: datetime) -> Incident:
        result = event.result
        failure = result.failure.value if result.failure else None
        changes: dict[str, object] = {}
        entries: list[TimelineEntry] = []
        # A passing run while still DOWN (on the way to success_threshold) is no failure.
        if not result.ok and (failure != current.failure or result.message != current.message):
            changes.update(failure=failure, message=result.message)
            entries.append(self._entry(current, now, "failure", result.message, failure=failure))
        elif not result.ok:
            # The same failure again: counted on its entry, not a new line.
            await self.store.repeat_entry(current.id, _SEEN, now)
        if event.severity is not None and event.severity.worse_than(current.severity):
            # Severity may rise while open, never silently fall.
            changes["severity"] = event.severity
            entries.append(self._entry(current, now, "severity_raised",
                                       f"{current.severity} → {event.severity} by rule {event.rule}",
                                       rule=event.rule))  # fmt: skip
        if event.last_good is not None and event.last_good != current.last_good:
            changes["last_good"] = event.last_good  # e.g. a newer failing commit to compare
        suppressed = _text(event.suppressed)
        entries += self._suppression_entries(current.suppressed, suppressed, current, now)
        if suppressed != current.suppressed:
            changes["suppressed"] = suppressed
            if event.suppressed is not None:
                self.metrics.suppressed.labels(event.suppressed.kind.value).inc()
        if confirmation := self._confirmation_entries(current, now, result):
            entries += confirmation  # the check was about to go down: who saw what
            changes.setdefault("message", result.message)
        if not changes:
            return current
        incident = replace(current, updated_at=now, **changes)  # type: ignore[arg-type]
        await self.store.update_incident(incident, entries)
        self._open[incident.key] = incident
        self._export()
        for entry in entries:
            if entry.event in _TOLD:
                await self._tell(incident, IncidentEvent(entry.event))
        return incident

    async def _recovered(self, current: Incident, event: CheckEvent, now: datetime) -> Incident:
        recovered = self._entry(current, now, "recovered", event.result.message)
        if not current.auto_resolve:
            incident = replace(current, updated_at=now)
            waiting = "the check recovered; a person must resolve this incident"
            await self._write(incident, [recovered, self._entry(current, now, "waiting", waiting)])
            return incident
        return await self._resolve(current, MONITOR, now, [recovered], "the check recovered")

    # --- from people -----------------------------------------------------------------

    async def acknowledge(self, incident_id: int, actor: str) -> Incident:
        async with self._lock:
            current = await self._must_be_open(incident_id)
            now = self.clock.now()
            if current.status is IncidentStatus.ACKNOWLEDGED:
                return current  # idempotent: a second ack changes nothing
            incident = replace(current, status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=now,
                               updated_at=now, assignee=current.assignee or actor)  # fmt: skip
            await self._write(incident, [self._entry(incident, now, "acknowledged",
                                                     f"acknowledged by {actor}", actor=actor)])  # fmt: skip
            self.metrics.time_to_ack.labels(str(incident.severity)).observe(
                (now - incident.opened_at).total_seconds()
            )
            log.info("incident_acknowledged", incident_id=incident.id, actor=actor)
            await self._tell(incident, IncidentEvent.ACKNOWLEDGED, actor)
            return incident

    async def resolve(self, incident_id: int, actor: str, note: str = "") -> Incident:
        async with self._lock:
            current = await self._must_be_open(incident_id)
            text = f"resolved by {actor}" + (f": {note}" if note else "")
            return await self._resolve(current, actor, self.clock.now(), [], text)

    async def _resolve(
        self, current: Incident, actor: str, now: datetime, entries: list[TimelineEntry], text: str
    ) -> Incident:
        incident = replace(current, status=IncidentStatus.RESOLVED, resolved_at=now, updated_at=now)
        entries = [*entries, self._entry(incident, now, "resolved", text, actor=actor)]
        await self.store.update_incident(incident, entries)
        self._open.pop(incident.key, None)
        label = str(incident.severity)
        self.metrics.incidents_resolved.labels(label).inc()
        self.metrics.time_to_resolve.labels(label).observe(
            (now - incident.opened_at).total_seconds()
        )
        log.info("incident_resolved", incident_id=incident.id, actor=actor)
        self._export()
        await self._tell(incident, IncidentEvent.RESOLVED, actor)
        return incident

    async def assign(self, incident_id: int, person: str, actor: str) -> Incident:
        async with self._lock:
            current = await self._must_be_open(incident_id)
            now = self.clock.now()
            incident = replace(current, assignee=person, updated_at=now)
            await self._write(incident, [self._entry(incident, now, "assigned",
                                                     f"assigned to {person} by {actor}",
                                                     actor=actor, person=person)])  # fmt: skip
            await self._tell(incident, IncidentEvent.ASSIGNED, actor)
            return incident

    async def comment(self, incident_id: int, text: str, actor: str) -> Incident:
        async with self._lock:
            current = await self._must_exist(incident_id)
            now = self.clock.now()
            incident = replace(current, updated_at=now)
            await self._write(
                incident, [self._entry(incident, now, "commented", text, actor=actor)]
            )
            return incident

    async def set_public_note(self, incident_id: int, note: str | None, actor: str) -> Incident:
        """Sets (or with None, clears) what the status page says of the incident. The
        timeline records who changed it, not the note: internal text and public text are
        kept apart both ways."""
        async with self._lock:
            current = await self._must_exist(incident_id)
            note = note.strip() if note else None
            if note and len(note) > MAX_PUBLIC_NOTE:
                raise IncidentInvalid(f"a public note is at most {MAX_PUBLIC_NOTE} characters")
            if note == current.public_note:
                return current  # idempotent: the same note again changes nothing
            now = self.clock.now()
            incident = replace(current, public_note=note or None, updated_at=now)
            words = f"public note {'set' if note else 'cleared'} by {actor}"
            await self._write(incident, [self._entry(incident, now, "public_note", words,
                                                     actor=actor)])  # fmt: skip
            log.info("incident_public_note", incident_id=incident.id, actor=actor,
                     cleared=note is None)  # fmt: skip
            return incident

    async def set_severity(self, incident_id: int, severity: Severity, actor: str) -> Incident:
        """A person sets the severity: triages a manual report, or changes it knowingly
        (lowering is allowed here, and recorded)."""
        async with self._lock:
            current = await self._must_be_open(incident_id)
            now = self.clock.now()
            event = (
                IncidentEvent.TRIAGED if current.severity is None else IncidentEvent.SEVERITY_SET
            )
            incident = replace(current, severity=severity, updated_at=now)
            await self._write(incident, [self._entry(incident, now, event,
                                                     f"{current.severity or 'untriaged'} → {severity} by {actor}",
                                                     actor=actor)])  # fmt: skip
            await self._tell(incident, event, actor)
            return incident

    async def report(
        self, title: str, actor: str, *, url: str | None = None, text: str = "",
        severity: Severity | None = None,
    ) -> Incident:  # fmt: skip
        """A manual report (a Discord message, a GitHub issue). It starts untriaged and
        pages nobody until a person sets its severity."""
        async with self._lock:
            now = self.clock.now()
            key = f"report:{url}" if url else f"report:{uuid.uuid4().hex[:12]}"
            if (existing := await self._current(key)) is not None:
                return existing  # the same URL reported twice is one incident
            incident = Incident(
                id=0, key=key, title=title, status=IncidentStatus.TRIGGERED, severity=severity,
                opened_at=now, updated_at=now, source=IncidentSource.MANUAL, message=text, report_url=url,
                auto_resolve=False,
            )  # fmt: skip
            words = (
                f"reported by {actor}"
                + (f" from {url}" if url else "")
                + (f": {text}" if text else "")
            )
            incident = await self.store.create_incident(
                incident, [self._entry(incident, now, "reported", words, actor=actor)]
            )
            self._open[key] = incident
            self.metrics.incidents_opened.labels(str(severity)).inc()
            log.warning("incident_reported", incident_id=incident.id, actor=actor)
            self._export()
            return incident

    async def retrigger(self, incident_id: int, reason: str) -> Incident | None:
        """Back to triggered (the acknowledgement timed out); None if it is no longer
        acknowledged."""
        async with self._lock:
            current = await self._must_exist(incident_id)
            if current.status is not IncidentStatus.ACKNOWLEDGED:
                return None
            now = self.clock.now()
            incident = replace(current, status=IncidentStatus.TRIGGERED, updated_at=now)
            await self._write(incident, [self._entry(incident, now, "retriggered", reason)])
            log.warning("incident_retriggered", incident_id=incident.id, reason=reason)
        await self._tell(incident, IncidentEvent.RETRIGGERED)
        return incident

    async def link_postmortem(self, incident_id: int, url: str, actor: str) -> Incident:
        """Records where the post-mortem is (a GitHub issue); linking it again is a no-op."""
        async with self._lock:
            current = await self._must_exist(incident_id)
            timeline = await self.store.timeline(incident_id)
            if any(e.event == "postmortem" and e.data.get("url") == url for e in timeline):
                return current
            now = self.clock.now()
            incident = replace(current, updated_at=now)
            entry = self._entry(
                incident, now, "postmortem", f"post-mortem: {url}", actor=actor, url=url
            )
            await self._write(incident, [entry])
            return incident

    async def note(self, incident_id: int, event: str, text: str) -> None:
        """Adds a line to the timeline (notifications sent, nobody on call, …)."""
        async with self._lock:
            # The stored row, not the cache: another replica may have changed it.
            incident = await self.store.get_incident(incident_id) or await self._must_exist(
                incident_id
            )
            entry = self._entry(incident, self.clock.now(), event, text)
            await self.store.update_incident(incident, [entry])

    async def drill(self, severity: Severity, actor: str) -> Incident:
        """Opens an incident marked as a drill: it goes through the real escalation and
        notifiers, every message labelled DRILL, and resolves itself (see the pager)."""
        async with self._lock:
            now = self.clock.now()
            incident = Incident(
                id=0, key=f"drill:{uuid.uuid4().hex[:12]}", title=f"DRILL: {severity} paging test",
                status=IncidentStatus.TRIGGERED, severity=severity, opened_at=now, updated_at=now,
                source=IncidentSource.DRILL, message="This is a drill: acknowledge it as you would a real page.",
                auto_resolve=False, drill=True,
            )  # fmt: skip
            entry = self._entry(incident, now, "opened", f"drill started by {actor}", actor=actor)
            incident = await self.store.create_incident(incident, [entry])
            self._open[incident.key] = incident
            log.warning("drill_started", incident_id=incident.id, severity=severity, actor=actor)
            self._export()
        await self._tell(incident, IncidentEvent.OPENED, actor)
        return incident

    # --- helpers ---------------------------------------------------------------------

    async def _must_exist(self, incident_id: int) -> Incident:
        incident = None
        if not self.shared:  # in a fleet only the store's row is current
            incident = next((i for i in self._open.values() if i.id == incident_id), None)
        incident = incident or await self.store.get_incident(incident_id)
        if incident is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return incident

    async def _must_be_open(self, incident_id: int) -> Incident:
        incident = await self._must_exist(incident_id)
        if not incident.is_open:
            raise IncidentConflict(f"incident {incident_id} is already resolved")
        return incident

    async def _write(self, incident: Incident, entries: list[TimelineEntry]) -> None:
        await self.store.update_incident(incident, entries)
        if incident.is_open:
            self._open[incident.key] = incident
        else:
            self._open.pop(incident.key, None)
        self._export()

    @staticmethod
    def _entry(incident: Incident, at: datetime, event: str, text: str, *, actor: str = MONITOR,
               **data: object) -> TimelineEntry:  # fmt: skip
        return TimelineEntry(
            incident.id, at, event, actor, text, {k: v for k, v in data.items() if v is not None}
        )

    def _suppression_entries(
        self, before: str | None, after: str | None, incident: Incident, now: datetime
    ) -> list[TimelineEntry]:
        if after == before:
            return []
        if after:
            return [self._entry(incident, now, "suppressed", f"not paging: {after}", reason=after)]
        return [self._entry(incident, now, "unsuppressed", f"paging allowed again (was: {before})")]

    def _confirmation_entries(
        self, incident: Incident, now: datetime, result: CheckResult
    ) -> list[TimelineEntry]:
        """Who saw what, when other replicas were asked before the check went down
        (`monitor.engine.confirm`)."""
        found = result.details.get("confirmation")
        if not isinstance(found, Mapping):
            return []
        replicas = [r for r in found.get("replicas") or [] if isinstance(r, Mapping)]
        seen = ", ".join(f"{r.get('replica')} saw {r.get('seen')}" for r in replicas)
        text = f"{found.get('outcome')}: {found.get('reason')}" + (f" ({seen})" if seen else "")
        return [self._entry(incident, now, "confirmation", text, outcome=found.get("outcome"),
                            reason=found.get("reason"), replicas=[dict(r) for r in replicas])]  # fmt: skip

    def _export(self) -> None:
        """Open incidents by severity and status, recomputed from the cache."""
        counts: dict[tuple[str, str], int] = {}
        for incident in self._open.values():
            key = (str(incident.severity), incident.status.value)
            counts[key] = counts.get(key, 0) + 1
        self.metrics.set_open_incidents(counts)


def _text(suppression: Suppression | None) -> str | None:
    """What an incident stores of a suppression: the text people read."""
    return None if suppression is None else suppression.text


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
