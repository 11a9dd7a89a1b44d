"""What every replica of a fleet serves: the same answers whichever one is asked.

A replica runs only the checks it owns (`engine.fleet`), and keeps incidents and
silences in memory (`IncidentManager`, `SilenceBook`). `FleetView` keeps those copies in
step with the fleet's truth, the shared store:

- **Check readings.** Each beat, the replica writes one compact row per check it owns
  that ran since the last beat (its alert state, last result and recent runs), in the
  fleet's beat statement (`take`, `Fleet.carried`) or, alone, through
  `SharedReadings.save_readings`; the runs are noted as they are delivered (`ran`), so a
  beat's cost follows the runs, not the number of checks. The others' rows are read on
  demand (`current`): a request for the status page, `/api/status` or a badge reads the
  rows written since the last read, at most once a beat, and waits for that read at most
  `READ_WAIT_S` (a store that does not answer: the page is served from what was read
  before). A replica nobody asks reads nothing. `readings` answers those requests: a
  check it owns from its own pipeline, any other from the newest of its owner's row and
  what it saw itself.
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
import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.history import CheckReadings, RunHistory
from monitor.engine.scheduler import ResultSink
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.store.readings import (
    CHANGED_INCIDENTS,
    CHANGED_SILENCES,
    SharedReadings,
    notice_incident,
)

__all__ = [
    "READ_WAIT_S",
    "RELOAD_BEATS",
    "FleetReadings",
    "FleetView",
    "LocalReadings",
    "Reading",
]

log = structlog.stdlib.get_logger(__name__)

RELOAD_BEATS = 10  # incidents and silences are read again this often, notices or not
MIN_RELOAD_GAP_S = 0.1  # a burst of notices is one reload per this
READ_WAIT_S = 1.0  # a request waits this long for the others' rows, then is served the last


class LocalReadings(CheckReadings, Protocol):
    """A replica's own pipeline, as its view reads it: `CheckReadings`, and the recent
    runs themselves, written for the others as they are kept (`RunHistory.pack`)."""

    def run_history(self, check: str) -> RunHistory | None: ...


@dataclass(frozen=True, slots=True)
class Reading:
    """What the owner of a check last told the fleet about it."""

    state: CheckState
    last: CheckResult
    runs: RunHistory

    def to_text(self) -> str:
        """The reading as JSON, assembled from its parts: written for each run of each
        check a replica owns, where `json.dumps` of the nested objects cost twice as
        much. Strings go through the json module's own quoting; `to_doc` is the same
        document as objects (what this text parses back to)."""
        last, s = self.last, self.state
        confirmation = last.details.get("confirmation")
        return (
            f'{{"state":{{"state":{_q(s.state.value)},"since":{_q_time(s.since)},'
            f'"ups":{int(s.ups)},"non_downs":{int(s.non_downs)},"bads":{int(s.bads)},'
            f'"downs":{int(s.downs)},"blinds":{int(s.blinds)},'
            f'"seen":{"null" if s.seen is None else _q(s.seen.value)},'
            f'"seen_since":{_q_time(s.seen_since)},'
            f'"cause":{"null" if s.cause is None else _q(s.cause)}}},'
            f'"last":{{"check":{_q(last.check)},"kind":{_q(last.kind)},'
            f'"outcome":{_q(last.outcome.value)},'
            f'"failure":{"null" if last.failure is None else _q(last.failure.value)},'
            f'"message":{_q(last.message)},"started_at":{_q(last.started_at.isoformat())},'
            f'"duration_s":{_number(last.duration_s)},'
            f'"confirmation":{_json(confirmation)}}},'
            # Packed (`RunHistory.pack`); `runs` stays for replicas of earlier versions,
            # which read it as a list (empty: no bars, not an error).
            f'"history":"{base64.b64encode(self.runs.pack()).decode("ascii")}","runs":[]}}'
        )

    def to_doc(self) -> dict[str, Any]:
        """The document `to_text` writes, as objects."""
        last, s = self.last, self.state
        return {
            "state": {
                "state": s.state.value, "since": _iso(s.since), "ups": s.ups,
                "non_downs": s.non_downs, "bads": s.bads, "downs": s.downs,
                "blinds": s.blinds, "seen": None if s.seen is None else s.seen.value,
                "seen_since": _iso(s.seen_since), "cause": s.cause,
            },
            "last": {
                "check": last.check, "kind": last.kind, "outcome": last.outcome.value,
                "failure": None if last.failure is None else last.failure.value,
                "message": last.message,
                "started_at": last.started_at.isoformat(), "duration_s": last.duration_s,
                "confirmation": last.details.get("confirmation"),
            },
            "history": base64.b64encode(self.runs.pack()).decode("ascii"),
            "runs": [],
        }  # fmt: skip

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
            duration_s=float(last["duration_s"] or 0.0),  # null: not a number
            details={"confirmation": confirmation} if isinstance(confirmation, dict) else {},
        )  # fmt: skip
        packed = doc.get("history")
        if isinstance(packed, str):  # not base64: binascii.Error, a ValueError
            runs = RunHistory.unpack(base64.b64decode(packed, validate=True))
        else:  # a replica of an earlier version: [start (ISO 8601), outcome, ms] each
            runs = RunHistory()
            for at, outcome, ms in doc["runs"]:
                runs.add_run(datetime.fromisoformat(str(at)).timestamp(), str(outcome),
                             float(ms) / 1000)  # fmt: skip
        return cls(state, result, runs)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_q = json.encoder.encode_basestring_ascii  # a str as a JSON string, quoted (in C)


def _q_time(value: datetime | None) -> str:
    return "null" if value is None else _q(value.isoformat())


def _number(value: float) -> str:
    """A float as JSON writes it (`repr`), and null where JSON has no number."""
    return repr(float(value)) if math.isfinite(value) else "null"


def _json(value: object) -> str:
    """JSON that PostgreSQL's json type takes (no NaN): a reading rides on the fleet's
    beat, and one it refused would fail the beat itself. Anything else: null."""
    if value is None:
        return "null"
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return "null"


def _time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


class FleetReadings:
    """`CheckReadings` over the fleet: this replica's pipeline for the checks it runs,
    the newer of its owner's row and its own memory for the others."""

    def __init__(
        self, local: LocalReadings, remote: dict[str, Reading], owns: Callable[[str], bool]
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
        return self.local.recent_runs(check) if found is None else found.runs.runs()


class FleetView:
    """Keeps this replica's answers the fleet's; see the module docstring. `run()` until
    cancelled; `readings` is what the status page and the badges read."""

    def __init__(
        self,
        store: SharedReadings,
        replica: str,
        clock: Clock,
        local: LocalReadings,
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
        # The readings ride on the fleet's beat (`Fleet.carried`), in its statement;
        # else this view's beat writes them.
        self.carried = False
        self.remote: dict[str, Reading] = {}
        self.readings = FleetReadings(local, self.remote, owns)
        self._ran: set[str] = set()  # checks run since the last write (`recording`)
        self._cursor: float | None = None
        # check → hash of the row text last read: the rows the store sends again (its
        # overlap for late commits) are not parsed again.
        self._seen: dict[str, int] = {}
        self._read_at: float | None = None  # when the last read of the others' rows began
        self._reading: asyncio.Future[None] | None = None  # the read under way, if any
        self._dirty: set[str] = set()
        self._retry: set[str] = set()  # reloads that failed: tried again at the next beat
        self._wake = asyncio.Event()
        self._beats = 0
        self._failing: dict[str, str] = {}  # part (write, read, reload) → its last error
        self._feed_broken = False

    # --- check readings ----------------------------------------------------------------

    def recording(self, sink: ResultSink) -> ResultSink:
        """`sink`, after which the check is noted as run (`ran`)."""

        async def record(config: CheckConfigBase, result: CheckResult) -> None:
            try:
                await sink(config, result)
            finally:
                self.ran(config.name)

        return record

    def ran(self, check: str) -> None:
        """`check` ran and its result was taken: its reading is written at the next beat."""
        self._ran.add(check)

    async def current(self) -> None:
        """Makes `readings` current for a request: reads the others' rows written since
        the last read, unless that read began less than a beat ago. Requests at the same
        time share one read; each waits for it at most `READ_WAIT_S`, then is served what
        was read before (the read goes on for the next one). Never raises."""
        now = self.clock.monotonic()
        reading = self._reading
        if reading is None:
            if self._read_at is not None and now - self._read_at < self.beat_s:
                return
            self._read_at = now
            reading = self._reading = asyncio.ensure_future(self._read_once())
        timer = asyncio.ensure_future(self.clock.sleep_until(now + READ_WAIT_S))
        try:
            await asyncio.wait({reading, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)

    async def _read_once(self) -> None:
        try:
            await self._read()
        except StoreError as exc:
            self._failed("read", str(exc))
        except Exception:  # a bug here must not fail the request
            log.exception("fleet_view_failed")
        else:
            self._recovered("read")
        finally:
            self._reading = None

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
                    # Readings carried by the fleet's beat: this loop only reloads, so it
                    # wakes for a notice or every `RELOAD_BEATS` beats, not every beat.
                    every = RELOAD_BEATS if self.carried else 1
                    next_beat = self.clock.monotonic() + every * self.beat_s
                    self._beats += every - 1
                    await self.beat()
                if self._dirty:
                    await self.reload()
                    await self.clock.sleep_until(self.clock.monotonic() + MIN_RELOAD_GAP_S)
                await self._until(next_beat)
        finally:
            listener.cancel()
            pending = [listener] if self._reading is None else [listener, self._reading]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

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
        """Writes the readings of the checks this replica ran since the last beat, and
        every `RELOAD_BEATS` beats reads incidents and silences again. A store that fails
        is logged once and the readings are written at the next beat."""
        self._beats += 1
        if self._beats % RELOAD_BEATS == 0:
            self._dirty |= {CHANGED_INCIDENTS, CHANGED_SILENCES}
        self._dirty |= self._retry
        self._retry = set()
        try:
            await self._write()
        except StoreError as exc:
            self._failed("write", str(exc))
            return
        except Exception:  # a bug here must not stop the replica serving
            log.exception("fleet_view_failed")
            return
        self._recovered("write")

    def take(self) -> tuple[set[str], list[tuple[str, str]]]:
        """The checks noted as run since the last write, and the readings of those this
        replica owns (and still has: a reload may have removed one); `give_back` if they
        were not written."""
        if not self._ran:
            return set(), []
        ran, self._ran = self._ran, set()
        local, rows = self.local, []
        for name in ran:
            if not self.owns(name):
                continue
            last, state = local.last_result(name), local.state(name)
            if last is not None and state is not None:
                runs = local.run_history(name) or RunHistory()
                rows.append((name, Reading(state, last, runs).to_text()))
        return ran, rows

    def give_back(self, checks: set[str]) -> None:
        self._ran |= checks  # written at the next beat

    async def _write(self) -> None:
        if self.carried:  # the fleet's beat writes them (`Fleet.carried`)
            return
        ran, rows = self.take()
        if not ran:
            return
        try:
            await self.store.save_readings(self.replica, rows)
        except BaseException:
            self.give_back(ran)
            raise

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
            self._failed("reload", str(exc))
            return
        except Exception:
            log.exception("fleet_view_failed")
            return
        self._recovered("reload")

    def _failed(self, part: str, error: str) -> None:
        """Logged once per outage of `part` (write, read, reload), not once per try."""
        if part not in self._failing:
            log.warning("fleet_view_stale", part=part, error=error)
        self._failing[part] = error

    def _recovered(self, part: str) -> None:
        if self._failing.pop(part, None) is not None:
            log.info("fleet_view_current", part=part)
