"""The recent runs of every check, kept by the pipeline and read by the status page, and
the persisted history: per check and minute, what the runs came to.

`RunHistory` keeps the last `RUNS` results of a check in three fixed arrays (13 bytes a
run), so 10,000 checks cost a few megabytes; `HistoryBook` holds one per check.
`CheckReadings` is what readers (the status page) may ask of the pipeline about a check:
its alert state, its last result and its recent runs, never the dicts behind them.

`Rollups` counts each run into its check's bucket of the current minute in memory (a few
integer additions a probe); `HistoryWriter` hands the finished minutes to the store in one
batch a minute (`Store.add_history`, which also adds them to the hour rows) and prunes
what is past retention once an hour. A stop flushes the minute in progress too: the store
merges by adding, so a minute written in two parts counts every run once.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import sys
from array import array
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from monitor.core.alertstate import CheckState
from monitor.core.clock import Clock
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, Outcome
from monitor.store.base import HOUR, LATENCY_BOUNDS_MS, MINUTE, HistoryBucket, Store

__all__ = [
    "RUNS",
    "WINDOWS",
    "CheckReadings",
    "HistoryBook",
    "HistoryView",
    "HistoryWriter",
    "Rollups",
    "RunHistory",
    "latency_quantile",
    "uptime_percent",
]

log = structlog.stdlib.get_logger(__name__)
FLUSH_S = 60.0  # how often finished minutes are written
PRUNE_S = 3600.0  # how often rows past retention are deleted
MAX_PENDING = 100_000  # check-minutes kept while the store fails (~400 B each: 40 MB)
# A bucket in memory: up, degraded, down, blind, sum_ms, max_ms, then the histogram.
_SLOTS = 6 + len(LATENCY_BOUNDS_MS) + 1

RUNS = 30  # bars per asset
_CODES = {Outcome.UP: 1, Outcome.DEGRADED: 2, Outcome.DOWN: 3}
_NAMES = {1: "up", 2: "degraded", 3: "down", 4: "blind"}
_BLIND = 4  # a run that could not observe the asset
# What an unpacked run may say: a start a `datetime` can show, a duration under a day.
_MIN_AT, _MAX_AT, _MAX_DURATION = 0.0, 253402300799.0, 86400.0


class RunHistory:
    """The last `RUNS` runs of one check: outcome, start time and duration."""

    __slots__ = ("_at", "_durations", "_next", "_outcomes")

    def __init__(self) -> None:
        self._outcomes = bytearray(RUNS)  # 0: empty slot
        self._at = array("d", bytes(8 * RUNS))
        self._durations = array("f", bytes(4 * RUNS))
        self._next = 0

    def add(self, result: CheckResult, *, blind: bool = False) -> None:
        i = self._next
        self._outcomes[i] = _BLIND if blind else _CODES[result.outcome]
        self._at[i] = result.started_at.timestamp()
        self._durations[i] = result.duration_s
        self._next = (i + 1) % RUNS

    def add_run(self, at: float, outcome: str, duration_s: float) -> None:
        """A run given by its start (Unix seconds), outcome name and duration."""
        code = next((c for c, name in _NAMES.items() if name == outcome), None)
        if code is None or not math.isfinite(at) or not math.isfinite(duration_s):
            raise ValueError("not a run")
        i = self._next
        self._outcomes[i], self._at[i], self._durations[i] = code, at, duration_s
        self._next = (i + 1) % RUNS

    def pack(self) -> bytes:
        """The runs as bytes another replica unpacks (`unpack`), oldest first: one byte
        per run for its outcome (0: none yet), then the starts (float64, Unix seconds),
        then the durations (float32, seconds), little-endian: 13 bytes a run, copied in
        C, where encoding each as JSON costs a replica more than its probe."""
        n = self._next
        at, durations = self._at[n:] + self._at[:n], self._durations[n:] + self._durations[:n]
        if sys.byteorder == "big":
            at.byteswap()
            durations.byteswap()
        return bytes(self._outcomes[n:] + self._outcomes[:n]) + at.tobytes() + durations.tobytes()

    @classmethod
    def unpack(cls, data: bytes) -> RunHistory:
        """What `pack` made (of any number of runs: the last `RUNS` are kept); ValueError
        for bytes it could not have made."""
        n, rest = divmod(len(data), 13)
        if rest:
            raise ValueError("not packed runs")
        outcomes = bytearray(data[:n])
        at, durations = array("d"), array("f")
        at.frombytes(data[n : 9 * n])
        durations.frombytes(data[9 * n :])
        if sys.byteorder == "big":
            at.byteswap()
            durations.byteswap()
        for i in range(n):
            if outcomes[i] and (
                outcomes[i] not in _NAMES
                or not _MIN_AT <= at[i] <= _MAX_AT
                or not 0 <= durations[i] < _MAX_DURATION
            ):
                raise ValueError("not packed runs")
        history, keep = cls(), min(n, RUNS)
        history._outcomes[RUNS - keep :] = outcomes[n - keep :]
        history._at[RUNS - keep :] = at[n - keep :]
        history._durations[RUNS - keep :] = durations[n - keep :]
        return history

    def runs(self) -> list[dict[str, Any]]:
        """Oldest first."""
        order = [*range(self._next, RUNS), *range(self._next)]
        return [
            {
                "at": datetime.fromtimestamp(self._at[i], UTC).isoformat(timespec="seconds"),
                "outcome": _NAMES[self._outcomes[i]],
                "duration_ms": round(self._durations[i] * 1000, 1),
            }
            for i in order
            if self._outcomes[i]
        ]


class HistoryBook:
    """One `RunHistory` per check."""

    __slots__ = ("by_check",)

    def __init__(self) -> None:
        self.by_check: dict[str, RunHistory] = {}

    def add(self, result: CheckResult, *, blind: bool = False) -> None:
        history = self.by_check.get(result.check)
        if history is None:
            history = self.by_check[result.check] = RunHistory()
        history.add(result, blind=blind)

    def runs(self, check: str) -> list[dict[str, Any]]:
        """The check's recent runs, oldest first (none yet: empty)."""
        history = self.by_check.get(check)
        return history.runs() if history is not None else []

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self.by_check.pop(name, None)


class CheckReadings(Protocol):
    """What the pipeline tells readers about one check, by name."""

    def state(self, check: str) -> CheckState | None:
        """Its alert state; None before its first run (and its stored state)."""
        ...

    def last_result(self, check: str) -> CheckResult | None:
        """Its latest raw result since the start; None before its first run."""
        ...

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        """Its recent runs, oldest first: `{"at", "outcome", "duration_ms"}`."""
        ...


class Rollups:
    """Per check, the runs of each minute not yet written, as flat lists of numbers."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], list[float]] = {}

    def add(self, result: CheckResult, *, blind: bool = False) -> None:
        at = int(result.started_at.timestamp())
        key = (result.check, at - at % MINUTE)
        row = self._open.get(key)
        if row is None:
            row = self._open[key] = [0.0] * _SLOTS
        if blind:
            row[3] += 1
            return
        row[_CODES[result.outcome] - 1] += 1
        ms = result.duration_s * 1000
        row[4] += ms
        if ms > row[5]:
            row[5] = ms
        row[6 + bisect.bisect_left(LATENCY_BOUNDS_MS, ms)] += 1

    def take(self, before: int | None = None) -> list[HistoryBucket]:
        """Removes and returns the buckets of minutes that start before `before` (all of
        them when None)."""
        keys = [k for k in self._open if before is None or k[1] + MINUTE <= before]
        return [_bucket(k, self._open.pop(k)) for k in keys]

    def give_back(self, buckets: Iterable[HistoryBucket]) -> int:
        """Takes buckets a failed write could not store back, to try again later. Beyond
        `MAX_PENDING` buckets the oldest minutes are dropped (how many is returned), so
        a long store outage costs bounded memory."""
        for b in buckets:
            row = self._open.setdefault((b.check, b.start), [0.0] * _SLOTS)
            for i, n in enumerate((b.up, b.degraded, b.down, b.blind, b.sum_ms)):
                row[i] += n
            row[5] = max(row[5], b.max_ms)
            for i, n in enumerate(b.latency):
                row[6 + i] += n
        excess = len(self._open) - MAX_PENDING
        if excess > 0:
            for key in sorted(self._open, key=lambda k: k[1])[:excess]:
                del self._open[key]
        return max(excess, 0)

    def outcomes(self) -> Iterator[tuple[str, int, int, int]]:
        """Per check and minute not yet written: (check, minute start, runs that found
        the asset up or degraded, runs that found it down); blind runs are left out."""
        for (check, start), row in self._open.items():
            yield check, start, int(row[0] + row[1]), int(row[2])

    def forget(self, names: Iterable[str]) -> None:
        gone = set(names)
        for key in [k for k in self._open if k[0] in gone]:
            del self._open[key]


def _bucket(key: tuple[str, int], row: list[float]) -> HistoryBucket:
    up, degraded, down, blind = (int(n) for n in row[:4])
    latency = tuple(int(n) for n in row[6:])
    return HistoryBucket(key[0], MINUTE, key[1], up, degraded, down, blind, row[4], row[5], latency)


class HistoryWriter:
    """Writes `rollups`' finished minutes to `store` every `FLUSH_S` seconds and prunes
    once every `PRUNE_S`. A store that fails keeps the minutes in memory for the next
    flush: history is never a reason to stop."""

    def __init__(self, rollups: Rollups, store: Store, clock: Clock) -> None:
        self.rollups, self.store, self.clock = rollups, store, clock
        self._pruned_at: float | None = None
        # Told each batch once it is stored, then called after every flush (`engine.slo`):
        # in the writer's own loop, so that they never see a batch half written.
        self.stored: list[Callable[[Sequence[HistoryBucket]], None]] = []
        self.after_flush: list[Callable[[], Awaitable[None]]] = []

    async def flush(self, *, everything: bool = False) -> None:
        now = int(self.clock.now().timestamp())
        buckets = self.rollups.take(None if everything else now)
        if buckets:
            try:
                await self.store.add_history(buckets)
            except StoreError as exc:
                dropped = self.rollups.give_back(buckets)
                log.warning("history_not_saved", error=str(exc), buckets=len(buckets),
                            dropped=dropped)  # fmt: skip
                return
            except asyncio.CancelledError:
                self.rollups.give_back(buckets)  # for the flush at stop
                raise
            for hook in self.stored:
                hook(buckets)
        mono = self.clock.monotonic()
        if self._pruned_at is None or mono - self._pruned_at >= PRUNE_S:
            try:
                await self.store.prune_history(now)
                self._pruned_at = mono
            except StoreError as exc:
                log.warning("history_not_pruned", error=str(exc))

    async def run(self) -> None:
        """Flushes every `FLUSH_S` until cancelled; the caller flushes `everything` at stop."""
        while True:
            await self.clock.sleep_until(self.clock.monotonic() + FLUSH_S)
            try:
                await self.flush()
            except Exception:  # a bug here must not stop the daemon's probes
                log.exception("history_flush_failed")
            for after in self.after_flush:
                try:
                    await after()
                except Exception:  # likewise
                    log.exception("history_after_flush_failed")


DAY = 24 * HOUR
# The uptime windows, and the resolution of each window's buckets.
WINDOWS: dict[str, tuple[int, int]] = {
    "24h": (DAY, HOUR), "7d": (7 * DAY, HOUR), "30d": (30 * DAY, DAY), "90d": (90 * DAY, DAY),
}  # fmt: skip


def uptime_percent(b: HistoryBucket) -> float | None:
    """Runs that found the asset up or degraded among the runs that could look (blind runs
    say nothing about the asset); None when no run could look."""
    looked = b.runs - b.blind
    return None if looked == 0 else round(100 * (b.up + b.degraded) / looked, 3)


def latency_quantile(b: HistoryBucket, q: float) -> float | None:
    """The `q` quantile of the durations, in ms, read from the histogram: the upper bound of
    the bucket where it falls, never above the slowest run; None without a timed run."""
    total = sum(b.latency)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for bound, n in zip((*LATENCY_BOUNDS_MS, None), b.latency, strict=True):
        seen += n
        if seen >= rank and n:
            return round(b.max_ms if bound is None else min(bound, b.max_ms), 1)
    return round(b.max_ms, 1)


def _sum(
    check: str, resolution: int, start: int, buckets: Iterable[HistoryBucket]
) -> HistoryBucket:
    total = HistoryBucket(check, resolution, start)
    for b in buckets:
        total = total.merged(b)
    return total


class HistoryView:
    """What the history API reads: per check, uptime over every window and the buckets and
    latency of one window, from the hour rows in the store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def figures(self, check: str, window: str) -> dict[str, Any]:
        """`window` is a key of `WINDOWS` (KeyError otherwise)."""
        span, resolution = WINDOWS[window]
        now = int(self.clock.now().timestamp())
        this_hour = now - now % HOUR
        hours = await self.store.read_history(
            check, HOUR, this_hour + HOUR - max(s for s, _ in WINDOWS.values()), this_hour + HOUR
        )
        uptime = {
            name: uptime_percent(_sum(check, HOUR, 0, (b for b in hours if b.start > now - s)))
            for name, (s, _) in WINDOWS.items()
        }
        inside = [b for b in hours if b.start > now - span]
        groups: dict[int, list[HistoryBucket]] = {}
        for b in inside:
            groups.setdefault(b.start - b.start % resolution, []).append(b)
        whole = _sum(check, HOUR, 0, inside)
        return {
            "check": check,
            "window": window,
            "at": _iso(now),
            "uptime_percent": uptime,
            "runs": whole.runs,
            "blind_runs": whole.blind,
            "latency_ms": _latency(whole),
            "resolution": "1d" if resolution == DAY else "1h",
            "buckets": [
                _bucket_json(_sum(check, resolution, start, group))
                for start, group in sorted(groups.items())
            ],
        }


def _latency(b: HistoryBucket) -> dict[str, float | None]:
    timed = sum(b.latency)
    return {
        "p50": latency_quantile(b, 0.5),
        "p95": latency_quantile(b, 0.95),
        "mean": round(b.sum_ms / timed, 1) if timed else None,
        "max": round(b.max_ms, 1) if timed else None,
    }


def _bucket_json(b: HistoryBucket) -> dict[str, Any]:
    return {
        "start": _iso(b.start),
        "runs": b.runs,
        "up": b.up,
        "degraded": b.degraded,
        "down": b.down,
        "blind": b.blind,
        "uptime_percent": uptime_percent(b),
        "latency_ms": _latency(b),
    }


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
