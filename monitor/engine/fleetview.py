"""What every replica of a fleet serves: the same answers whichever one is asked.

A replica runs only the checks it owns (`engine.fleet`), and keeps incidents and
silences in memory (`IncidentManager`, `SilenceBook`). `FleetView` keeps those copies in
step with the fleet's truth, the shared store:

- **Check readings.** Each beat, the replica writes one compact row per check it owns
  that ran since (`SharedReadings.save_readings`: its alert state, last result and recent
  runs), and reads the rows the others wrote since its last read. `readings` answers the
  status page, `/api/status` and the badges: a check it owns from its own pipeline, any
  other from the newest of its owner's row and what it saw itself, never a store read
  per request.
- **Incidents and silences.** Every change to either is announced on the store's change
  feed (`SharedReadings.listen_changes`, PostgreSQL's LISTEN/NOTIFY); a notice makes
  the replica read the incident it names (or every open one) or its silences again at
  once, so a silence created through another replica holds back this one's pages
  within moments. Every
  `RELOAD_BEATS` beats both are read again whatever the feed said (a notice lost while
  the feed reconnected is made good), and a feed that breaks is reopened each beat.

`/metrics` stays this replica's own: the probes it ran, its own process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any

import structlog

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.history import CheckReadings
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.store.readings import (
    CHANGED_INCIDENTS,
    CHANGED_SILENCES,
    SharedReadings,
    notice_incident,
)

__all__ = ["RELOAD_BEATS", "FleetReadings", "FleetView", "Reading"]

log = structlog.stdlib.get_logger(__name__)

RELOAD_BEATS = 10  # incidents and silences are read again this often, notices or not
MIN_RELOAD_GAP_S = 0.1  # a burst of notices is one reload per this


@dataclass(frozen=True, slots=True)
class Reading:
    """What the owner of a check last told the fleet about it."""

    state: CheckState
    last: CheckResult
    runs: list[dict[str, Any]]

    def to_text(self) -> str:
        last = self.last
        confirmation = last.details.get("confirmation")
        return json.dumps(
            {
                "state": {f.name: _plain(getattr(self.state, f.name)) for f in fields(self.state)},
                "last": {
                    "check": last.check, "kind": last.kind, "outcome": last.outcome.value,
                    "failure": _plain(last.failure), "message": last.message,
                    "started_at": last.started_at.isoformat(), "duration_s": last.duration_s,
                    "confirmation": confirmation,
                },
                "runs": [[r["at"], r["outcome"], r["duration_ms"]] for r in self.runs],
            },
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def from_text(cls, text: str) -> Reading:
        """ValueError (or KeyError, TypeError) for a row that is not a reading."""
        doc = json.loads(text)
        s, last = doc["state"], doc["last"]
        state = CheckState(
            AlertState(s["state"]), _time(s["since"]), int(s["ups"]), int(s["non_downs"]),
            int(s["bads"]), int(s["downs"]), int(s["blinds"]),
            None if s["seen"] is None else AlertState(s["seen"]), _time(s["seen_since"]),
            s["cause"],
        )  # fmt: skip
        started = _time(last["started_at"])
        if started is None:
            raise ValueError("a reading without a start")
        confirmation = last.get("confirmation")
        result = CheckResult(
            check=str(last["check"]), kind=str(last["kind"]), outcome=Outcome(last["outcome"]),
            failure=None if last["failure"] is None else FailureKind(last["failure"]),
            message=str(last["message"]), started_at=started,
            duration_s=float(last["duration_s"]),
            details={"confirmation": confirmation} if isinstance(confirmation, dict) else {},
        )  # fmt: skip
        runs = [{"at": str(at), "outcome": str(o), "duration_ms": float(ms)}
                for at, o, ms in doc["runs"]]  # fmt: skip
        return cls(state, result, runs)


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


class FleetReadings:
    """`CheckReadings` over the fleet: this replica's pipeline for the checks it runs,
    the newer of its owner's row and its own memory for the others."""

    def __init__(
        self, local: CheckReadings, remote: dict[str, Reading], owns: Callable[[str], bool]
    ) -> None:
        self.local, self.remote, self.owns = local, remote, owns

    def _remote(self, check: str) -> Reading | None:
        """The owner's row when it is what to answer with: for a check run elsewhere
        unless this replica saw a newer run itself, and for one this replica has taken
        over until its first run here."""
        found = self.remote.get(check)
        if found is None:
            return None
        mine = self.local.last_result(check)
        if mine is None:
            return found
        if self.owns(check):
            return None
        return found if found.last.started_at >= mine.started_at else None

    def state(self, check: str) -> CheckState | None:
        found = self._remote(check)
        return found.state if found is not None else self.local.state(check)

    def last_result(self, check: str) -> CheckResult | None:
        found = self._remote(check)
        return found.last if found is not None else self.local.last_result(check)

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        found = self._remote(check)
        return list(found.runs) if found is not None else self.local.recent_runs(check)


class FleetView:
    """Keeps this replica's answers the fleet's; see the module docstring. `run()` until
    cancelled; `readings` is what the status page and the badges read."""

    def __init__(
        self,
        store: SharedReadings,
        replica: str,
        clock: Clock,
        local: CheckReadings,
        owns: Callable[[str], bool],
        checks: Callable[[], Sequence[CheckConfigBase]],
        *,
        beat_s: float,
        incidents: IncidentManager | None = None,
        silences: SilenceBook | None = None,
    ) -> None:
        self.store, self.replica, self.clock = store, replica, clock
        self.local, self.owns, self.checks = local, owns, checks
        self.beat_s = beat_s
        self.incidents, self.silences = incidents, silences
        self.remote: dict[str, Reading] = {}
        self.readings = FleetReadings(local, self.remote, owns)
        self._written: dict[str, datetime] = {}  # check → start of the run last written
        self._cursor: float | None = None
        # check → hash of the row text last read: the rows the store sends again (its
        # overlap for late commits, about 3 of every 4 in a beat) are not parsed again.
        self._seen: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._retry: set[str] = set()  # reloads that failed: tried again at the next beat
        self._wake = asyncio.Event()
        self._beats = 0
        self._failing: str | None = None  # the last error logged, until it clears
        self._feed_broken = False

    # --- the change feed ---------------------------------------------------------------

    def notice(self, what: str) -> None:
        """A change announced on the feed: read it back at once (a notice naming an
        incident: that incident alone)."""
        if what in (CHANGED_INCIDENTS, CHANGED_SILENCES) or notice_incident(what) is not None:
            self._dirty.add(what)
            self._wake.set()

    def _heard(self, what: str) -> None:
        self._feed_broken = False
        self.notice(what)

    async def listen(self) -> None:
        """Follows the change feed until cancelled; reopened a beat after it breaks, and
        everything is read again then (notices may have been lost meanwhile)."""
        while True:
            try:
                await self.store.listen_changes(self._heard)
            except StoreError as exc:
                if not self._feed_broken:  # once per outage, not once per try
                    log.warning("change_feed_broken", error=str(exc), retry_every_s=self.beat_s)
                self._feed_broken = True
            self.notice(CHANGED_INCIDENTS)
            self.notice(CHANGED_SILENCES)
            await self.clock.sleep_until(self.clock.monotonic() + self.beat_s)

    # --- beats ---------------------------------------------------------------------------

    async def run(self) -> None:
        listener = asyncio.ensure_future(self.listen())
        try:
            next_beat = self.clock.monotonic()
            while True:
                if self.clock.monotonic() >= next_beat:
                    next_beat = self.clock.monotonic() + self.beat_s
                    await self.beat()
                if self._dirty:
                    await self.reload()
                    await self.clock.sleep_until(self.clock.monotonic() + MIN_RELOAD_GAP_S)
                await self._until(next_beat)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _until(self, deadline: float) -> None:
        """Waits for `deadline` on the clock or a notice, whichever comes first."""
        if self._dirty:
            return
        self._wake.clear()
        woken = asyncio.ensure_future(self._wake.wait())
        timer = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait({woken, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (woken, timer):
                task.cancel()
            await asyncio.gather(woken, timer, return_exceptions=True)

    async def beat(self) -> None:
        """Writes this replica's new readings, reads the others', and every
        `RELOAD_BEATS` beats reads incidents and silences again. A store that fails is
        logged once and tried again next beat."""
        self._beats += 1
        if self._beats % RELOAD_BEATS == 0:
            self._dirty |= {CHANGED_INCIDENTS, CHANGED_SILENCES}
        self._dirty |= self._retry
        self._retry = set()
        try:
            await self._write()
            await self._read()
        except StoreError as exc:
            self._failed(str(exc))
            return
        except Exception:  # a bug here must not stop the replica serving
            log.exception("fleet_view_failed")
            return
        self._recovered()

    async def _write(self) -> None:
        rows: list[tuple[str, str]] = []
        started: dict[str, datetime] = {}
        names: set[str] = set()
        for config in self.checks():
            name = config.name
            names.add(name)
            if not self.owns(name):
                continue
            last = self.local.last_result(name)
            state = self.local.state(name)
            if last is None or state is None or self._written.get(name) == last.started_at:
                continue
            reading = Reading(state, last, self.local.recent_runs(name))
            rows.append((name, reading.to_text()))
            started[name] = last.started_at
        if rows:
            await self.store.save_readings(self.replica, rows)
            self._written.update(started)
        for name in self._written.keys() - names:  # removed by a reload
            del self._written[name]

    async def _read(self) -> None:
        cursor, rows = await self.store.load_readings(self._cursor, other_than=self.replica)
        for check, text in rows.items():
            digest = hash(text)
            if self._seen.get(check) == digest:
                continue  # read before: taken, found older, or unreadable (said once)
            self._seen[check] = digest
            try:
                reading = Reading.from_text(text)
            except (ValueError, KeyError, TypeError, IndexError):
                log.warning("check_reading_unreadable", check=check)
                continue
            known = self.remote.get(check)
            if known is None or known.last.started_at <= reading.last.started_at:
                self.remote[check] = reading
        self._cursor = cursor
        names = {c.name for c in self.checks()}
        for gone in [c for c in self.remote if c not in names]:
            del self.remote[gone]
        for gone in [c for c in self._seen if c not in names]:
            del self._seen[gone]

    async def reload(self) -> None:
        """Reads the open incidents and the silences again, as the notices asked."""
        dirty, self._dirty = self._dirty, set()
        try:
            named = [i for i in map(notice_incident, dirty) if i is not None]
            if CHANGED_INCIDENTS in dirty and self.incidents is not None:
                await self.incidents.reload()
            elif named and self.incidents is not None:
                await self.incidents.reload_ids(named)
            if CHANGED_SILENCES in dirty and self.silences is not None:
                await self.silences.load()
        except StoreError as exc:
            self._retry |= dirty
            self._failed(str(exc))
        except Exception:
            log.exception("fleet_view_failed")

    def _failed(self, error: str) -> None:
        if self._failing is None:
            log.warning("fleet_view_stale", error=error)
        self._failing = error

    def _recovered(self) -> None:
        if self._failing is not None:
            log.info("fleet_view_current")
        self._failing = None
