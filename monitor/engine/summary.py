"""What the status page shows of each check's history, kept in memory: uptime over 24 h,
7 d, 30 d and 90 d, 90 days of daily status, the latency of the last 24 hours (per hour)
and of 90 days (per day), and the resolved incidents of the last 90 days.

`Summaries.refresh()` reads the store and is run once a minute by `Summaries.run()`: a
page request reads no history, whatever the number of checks. Per check a refresh reads
the hour rows that may have changed (the last 24 on the first refresh, then the last
two) and their days, added up by the store (all 90 on the first refresh, then today, and
yesterday too in the first hour of a day), for up to `READ_AT_ONCE` checks per call
(`Store.read_history_of`, `Store.read_history_totals_of`): at 3,000 checks, 12
statements a minute, not 6,000. Between checks it yields to the loop, so the probes
never wait for it.

Per check the figures are kept in two float arrays (about 3 KB a check). Days are UTC
days. The 24 h uptime counts the last 24 hour rows, as `GET /api/assets/{name}/history`
does; the 7 d, 30 d and 90 d figures count whole UTC days (today so far and the 6, 29 or
89 days before), as the daily bar shows them. Uptime is `(up + degraded) / (runs - blind)`
(`engine.history.uptime_percent`): blind runs say nothing about the asset.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import structlog

from monitor.core.clock import Clock
from monitor.core.errors import StoreError
from monitor.core.model import Incident, IncidentStatus
from monitor.engine.history import DAY, latency_quantile
from monitor.store.base import HOUR, HistoryBucket, Store

__all__ = [
    "DAYS",
    "HOURS",
    "REFRESH_S",
    "UPTIME_WINDOWS",
    "CheckSummary",
    "Day",
    "Hour",
    "Summaries",
    "day_status",
    "overlapping",
]

log = structlog.stdlib.get_logger(__name__)

DAYS = 90  # days in the daily bar and the longest uptime window
HOURS = 24  # hours in the 24 h chart
REFRESH_S = 60.0  # how often the summaries are read again
YIELD_EVERY = 10  # checks refreshed between two yields to the loop (a few ms)
READ_AT_ONCE = 500  # checks whose history one store call reads
MAX_RESOLVED = 1000  # resolved incidents read per refresh (newest first)
UPTIME_WINDOWS: dict[str, int] = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}  # hours / days
_D = 7  # floats a day: ok, looked, degraded, down, blind, p50, p95
_H = 4  # floats an hour: ok, looked, p50, p95
_NAN = float("nan")
_NO_DAY = (0.0, 0.0, 0.0, 0.0, 0.0, _NAN, _NAN)
_NO_HOUR = (0.0, 0.0, _NAN, _NAN)


class Day(NamedTuple):
    """One UTC day of a check: runs that found it up or degraded (`ok`), runs that could
    look, and the latency quantiles (ms) of the day's timed runs."""

    start: int
    ok: int
    looked: int
    degraded: int
    down: int
    blind: int
    p50: float | None
    p95: float | None

    @property
    def uptime(self) -> float | None:
        return None if self.looked == 0 else round(100 * self.ok / self.looked, 3)

    @property
    def status(self) -> str:
        return day_status(self)


def day_status(day: Day) -> str:
    """The day's colour: `empty` (no run), `blind` (no run could look), `up` (every run
    found it up), `degraded` (runs found it degraded, or down but uptime stayed at 99 % or
    more), `down` (uptime below 99 %)."""
    if day.looked == 0:
        return "blind" if day.blind else "empty"
    if day.down == 0 and day.degraded == 0:
        return "up"
    if day.ok * 100 >= 99 * day.looked:
        return "degraded"
    return "down"


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour of a check: runs up or degraded, runs that could look, latency (ms)."""

    start: int
    ok: int
    looked: int
    p50: float | None
    p95: float | None


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 1)


class CheckSummary:
    """One check's figures as of `day0` (the UTC day of its last refresh, the last of its
    `DAYS` days) and `hour0` (the last of its `HOURS` hours)."""

    __slots__ = ("day0", "days", "hour0", "hours")

    def __init__(self, day0: int, hour0: int) -> None:
        self.day0, self.hour0 = day0, hour0
        self.days = array("f", _NO_DAY * DAYS)
        self.hours = array("f", _NO_HOUR * HOURS)

    def day_list(self) -> list[Day]:
        """Oldest first, `DAYS` of them."""
        d = self.days.tolist()
        first = self.day0 - (DAYS - 1) * DAY
        return [
            Day(first + i * DAY, int(d[k]), int(d[k + 1]), int(d[k + 2]), int(d[k + 3]),
                int(d[k + 4]), None if d[k + 5] != d[k + 5] else round(d[k + 5], 1),
                None if d[k + 6] != d[k + 6] else round(d[k + 6], 1))
            for i, k in enumerate(range(0, DAYS * _D, _D))
        ]  # fmt: skip

    def hour_list(self) -> list[Hour]:
        """Oldest first, `HOURS` of them (the last one is the hour in progress)."""
        h = self.hours
        return [
            Hour(self.hour0 - (HOURS - 1 - j) * HOUR, int(h[j * _H]), int(h[j * _H + 1]),
                 _num(h[j * _H + 2]), _num(h[j * _H + 3]))
            for j in range(HOURS)
        ]  # fmt: skip

    def uptime(self) -> dict[str, float | None]:
        """Uptime in percent over each of `UPTIME_WINDOWS`; None where no run could look."""
        figures: dict[str, float | None] = {}
        for name, n in UPTIME_WINDOWS.items():
            if name == "24h":
                ok = sum(self.hours[j * _H] for j in range(HOURS))
                looked = sum(self.hours[j * _H + 1] for j in range(HOURS))
            else:
                ok = sum(self.days[i * _D] for i in range(DAYS - n, DAYS))
                looked = sum(self.days[i * _D + 1] for i in range(DAYS - n, DAYS))
            figures[name] = None if looked == 0 else round(100 * ok / looked, 3)
        return figures

    def _put_day(self, i: int, b: HistoryBucket) -> None:
        self.days[i * _D : (i + 1) * _D] = array("f", _figures(b, with_counts=True))

    def _put_hour(self, j: int, b: HistoryBucket) -> None:
        self.hours[j * _H : (j + 1) * _H] = array("f", _figures(b, with_counts=False))

    def _shift(self, day0: int, hour0: int) -> None:
        """Moves the days to end on `day0` and the hours on `hour0`; what comes in is empty."""
        n = min((day0 - self.day0) // DAY, DAYS)
        if n > 0:
            del self.days[: n * _D]
            self.days.extend(array("f", _NO_DAY * n))
        m = min((hour0 - self.hour0) // HOUR, HOURS)
        if m > 0:
            del self.hours[: m * _H]
            self.hours.extend(array("f", _NO_HOUR * m))
        self.day0, self.hour0 = day0, hour0


def _figures(b: HistoryBucket, *, with_counts: bool) -> list[float]:
    p50, p95 = latency_quantile(b, 0.5), latency_quantile(b, 0.95)
    q = [_NAN if p50 is None else p50, _NAN if p95 is None else p95]
    ok, looked = b.up + b.degraded, b.runs - b.blind
    if with_counts:
        return [ok, looked, b.degraded, b.down, b.blind, *q]
    return [ok, looked, *q]


class Summaries:
    """The status page's figures per check, refreshed from the store once a minute."""

    def __init__(self, store: Store, clock: Clock, checks: Callable[[], Iterable[str]]) -> None:
        self.store, self.clock, self.checks = store, clock, checks
        self.by_check: dict[str, CheckSummary] = {}
        self.resolved: list[Incident] = []  # resolved in the last `DAYS` days, newest first
        self.refreshed_at: datetime | None = None  # None: not read yet

    def get(self, check: str) -> CheckSummary | None:
        return self.by_check.get(check)

    async def refresh(self) -> None:
        """Reads what changed since the last refresh; a check the store cannot answer for
        keeps its figures until the next one."""
        now = int(self.clock.now().timestamp())
        day0, hour0 = now - now % DAY, now - now % HOUR
        names = list(self.checks())
        failed = 0
        # Checks whose changed hours start alike (every check but a new one) are read
        # together, `READ_AT_ONCE` per call: two statements per chunk, not per check.
        groups: dict[tuple[int, int], list[str]] = {}
        for name in names:
            groups.setdefault(self._since(name, day0, hour0), []).append(name)
        for (since_day, since_hour), group in groups.items():
            for at in range(0, len(group), READ_AT_ONCE):
                chunk = group[at : at + READ_AT_ONCE]
                try:
                    days = await self.store.read_history_totals_of(
                        chunk, DAY, since_day, day0 + DAY
                    )
                    hours = await self.store.read_history_of(chunk, HOUR, since_hour, hour0 + HOUR)
                except StoreError:
                    failed += len(chunk)
                    continue
                for n, name in enumerate(chunk):
                    if n and n % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                    self._apply(name, day0, hour0, (since_day, since_hour),
                                days.get(name, []), hours.get(name, []))  # fmt: skip
        for gone in set(self.by_check) - set(names):
            del self.by_check[gone]
        try:
            incidents = await self.store.list_incidents(
                statuses=[IncidentStatus.RESOLVED], limit=MAX_RESOLVED
            )
            self.resolved = [
                i
                for i in incidents
                if i.resolved_at and i.resolved_at.timestamp() > now - DAYS * DAY
            ]
        except StoreError:
            failed += 1
        if failed:
            log.warning("summaries_not_refreshed", failed=failed, checks=len(names))
        self.refreshed_at = datetime.fromtimestamp(now, UTC)

    def _since(self, name: str, day0: int, hour0: int) -> tuple[int, int]:
        """The first day and the first hour of `name` that may have changed since its last
        refresh (all of them for a check not read yet)."""
        summary = self.by_check.get(name)
        first_day, first_hour = day0 - (DAYS - 1) * DAY, hour0 - (HOURS - 1) * HOUR
        if summary is None:
            return first_day, first_hour
        # The hours written since the last refresh start at most an hour before it (a
        # minute is written the minute after it ends): they and their days are read again.
        changed = summary.hour0 - HOUR
        return max(first_day, changed - changed % DAY), max(first_hour, changed)

    def _apply(
        self,
        name: str,
        day0: int,
        hour0: int,
        since: tuple[int, int],
        days: Sequence[HistoryBucket],
        hours: Sequence[HistoryBucket],
    ) -> None:
        """Puts what was read of `name` from `since` (first day, first hour) in place."""
        since_day, since_hour = since
        summary = self.by_check.get(name)
        if summary is None:
            summary = CheckSummary(day0, hour0)
        summary._shift(day0, hour0)
        for i in range(DAYS - 1 - (day0 - since_day) // DAY, DAYS):
            summary.days[i * _D : (i + 1) * _D] = array("f", _NO_DAY)
        for b in days:
            i = DAYS - 1 - (day0 - b.start) // DAY
            if 0 <= i < DAYS:
                summary._put_day(i, b)
        for j in range(HOURS - 1 - (hour0 - since_hour) // HOUR, HOURS):
            summary.hours[j * _H : (j + 1) * _H] = array("f", _NO_HOUR)
        for b in hours:
            summary._put_hour(HOURS - 1 - (hour0 - b.start) // HOUR, b)
        self.by_check[name] = summary

    async def run(self) -> None:
        """Refreshes now and every `REFRESH_S` until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop the daemon
                log.exception("summaries_refresh_failed")
            await self.clock.sleep_until(self.clock.monotonic() + REFRESH_S)


def overlapping(incidents: Sequence[Incident], start: int, end: int) -> list[Incident]:
    """The incidents that were open at some time in `[start, end)` (Unix seconds)."""
    return [
        i
        for i in incidents
        if i.opened_at.timestamp() < end
        and (i.resolved_at is None or i.resolved_at.timestamp() >= start)
    ]
