"""SLOs and error budgets: how much of its budget a check or a group has left, how fast
it burns it, and an incident when it burns too fast.

An objective (`slo: {target: 99.9%, window: 30d}` on a check or a group) counts runs:
good ones found the asset up or degraded, bad ones found it down, and blind runs (the
monitor could not look) do not count, as for uptime. The error budget is `1 - target`;
the burn rate over a window is the error ratio there divided by the budget (1: the
budget lasts exactly the SLO window); the budget remaining is `1 - ` the burn rate over
the SLO window (1 untouched, 0 spent, below 0 overspent).

Burn levels follow the multiwindow, multi-burn-rate alerts of Google's SRE workbook
("Alerting on SLOs"): `fast` when the 1 h and 5 m burn rates are both above 14.4 (2 % of a
30-day budget in an hour) or the 6 h and 30 m ones both above 6 (5 % in six hours), the
page; `slow` when the 3 d and 6 h ones are both above 1 (10 % in three days), the ticket.
The short window of each pair makes the alert stop soon after the burn does.

Edges, defined: a window without a run that could look has no burn rate (None, JSON
null, no Prometheus sample) and a window longer than the history so far is judged on the
runs there are. A target of 100 % has no budget: a window with no bad run burns at 0,
one with any bad run at `BURN_CAP` (finite, so that JSON and dashboards carry it, far
above every threshold), and its remaining budget is 1 until a bad run, then 0.

`SloEvaluator` keeps, per objective, the good and bad runs of each minute of the last
6 hours and each hour of its window in two rings of integers (no per-run work: it is
told each batch `HistoryWriter` stores, and reads the store only to start an objective),
adds the minutes not yet written from `Rollups`, and evaluates every objective once a
minute, after each flush: metrics, readings for the API and the asset page, and the
`slo_burn` incidents that severity rules naming `burn_rate` give a severity.

In a fleet (`shared`) each replica stores only the runs of the checks it owns, so the
batches it stores are not the fleet's: each round then reads the last `REREAD_S` of
minute rows (and the hours they fall in) of its objectives' checks back from the store,
which adds up every replica's runs, and puts them in the rings in place of what was
there. Every replica serves the same figures; only the one `leads` names for an objective
(its owner among the live replicas) opens and resolves its burn incident.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from monitor.core.alertstate import AlertState
from monitor.core.clock import Clock
from monitor.core.configtypes import (
    CheckConfigBase,
    GroupConfig,
    SloConfig,
    format_duration,
    group_of,
)
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.history import Rollups
from monitor.incidents.maintenance import MaintenanceWindow, suppression
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.incidents.rules import BurnLevel, SeverityRule, Situation, classify
from monitor.incidents.silences import SilenceBook
from monitor.metrics.slo import SloMetrics
from monitor.store.base import HOUR, MINUTE, HistoryBucket, Store

__all__ = [
    "BURN_CAP",
    "BURN_WINDOWS",
    "Objective",
    "SloEvaluator",
    "SloReading",
    "budget_remaining",
    "burn_level",
    "burn_rate",
    "objectives",
]

log = structlog.stdlib.get_logger(__name__)

Scope = Literal["check", "group"]
BURN_WINDOWS: dict[str, int] = {"5m": 300, "30m": 1800, "1h": 3600, "6h": 21600, "3d": 259200}
# (long window, short window, threshold): both above it.
FAST: tuple[tuple[str, str, float], ...] = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
SLOW: tuple[tuple[str, str, float], ...] = (("3d", "6h", 1.0),)
BURN_CAP = 1_000_000.0  # the burn rate of a bad run against a zero budget (target 100 %)
YIELD_EVERY = 200  # objectives evaluated between two yields to the event loop
_SHORT = 6 * HOUR  # windows up to this long are summed from minutes, longer ones from hours
# In a fleet, the stored minutes read back each round: other replicas store a finished
# minute within about one flush (`history.FLUSH_S`) after it ends.
REREAD_S = 5 * MINUTE


# ---- pure figures -------------------------------------------------------------------


def _budget(target: float) -> float:
    return round(1.0 - target, 12)  # 1 - 0.999 is 0.001, not 0.0010000000000000009


def burn_rate(good: int, bad: int, target: float) -> float | None:
    """Error ratio over error budget; None without a run that could look."""
    runs = good + bad
    if runs == 0:
        return None
    budget = _budget(target)
    if budget <= 0:
        return BURN_CAP if bad else 0.0
    return min(bad / runs / budget, BURN_CAP)


def budget_remaining(good: int, bad: int, target: float) -> float | None:
    """Share of the budget left: 1 untouched, 0 spent, negative overspent; None without
    a run that could look. A zero budget (target 100 %) is 1 until a bad run, then 0."""
    rate = burn_rate(good, bad, target)
    if rate is None:
        return None
    if _budget(target) <= 0:
        return 0.0 if bad else 1.0
    return 1.0 - rate


def burn_level(rates: Mapping[str, float | None]) -> BurnLevel | None:
    """`fast`, `slow` or None from the burn rates by window (`BURN_WINDOWS` keys)."""

    def above(pairs: tuple[tuple[str, str, float], ...]) -> bool:
        return any(
            (a := rates.get(long)) is not None and a > limit
            and (b := rates.get(short)) is not None and b > limit
            for long, short, limit in pairs
        )  # fmt: skip

    return "fast" if above(FAST) else "slow" if above(SLOW) else None


def _why(level: BurnLevel, rates: Mapping[str, float | None]) -> str:
    """Which pair made the level: stable text (no figures), so that a burn that goes on
    adds no timeline line a minute."""
    for long, short, limit in FAST if level == "fast" else SLOW:
        a, b = rates.get(long), rates.get(short)
        if a is not None and b is not None and a > limit and b > limit:
            return f"{long} and {short} burn rates above {limit:g}x"
    return level


# ---- objectives ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Objective:
    """One SLO: a check's own, or a group's over its enabled checks."""

    name: str
    scope: Scope
    slo: SloConfig
    checks: tuple[str, ...]
    kind: str  # the check's kind; "group" for a group
    tags: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """Its incidents' dedup key."""
        return f"slo:{self.scope}:{self.name}"

    @property
    def span(self) -> int:
        """Seconds of hours it keeps: its window, and at least the 3 d burn window."""
        return max(int(self.slo.window.total_seconds()), BURN_WINDOWS["3d"])


def objectives(
    checks: Iterable[CheckConfigBase], groups: Mapping[str, GroupConfig]
) -> list[Objective]:
    """The objectives of a config: each enabled check's `slo`, then each group's (over
    the enabled checks of the group)."""
    enabled = [c for c in checks if c.enabled]
    out = [
        Objective(c.name, "check", c.slo, (c.name,), c.kind, frozenset(c.tags))
        for c in enabled
        if c.slo is not None
    ]
    for name, group in groups.items():
        if group.slo is not None:
            members = tuple(c.name for c in enabled if group_of(c) == name)
            out.append(Objective(name, "group", group.slo, members, "group"))
    return out


@dataclass(frozen=True, slots=True)
class SloReading:
    """An objective's figures at `at`."""

    objective: Objective
    at: datetime
    good: int  # over the SLO window
    bad: int
    remaining: float | None
    burn: dict[str, float | None]
    level: BurnLevel | None

    def to_json(self) -> dict[str, Any]:
        o = self.objective
        return {
            "name": o.name,
            "scope": o.scope,
            "target_percent": round(o.slo.target * 100, 6),
            "window": format_duration(o.slo.window),
            "at": self.at.isoformat(timespec="seconds"),
            "runs": self.good + self.bad,
            "bad_runs": self.bad,
            "error_budget_remaining": _round(self.remaining),
            "burn_rate": {w: _round(r) for w, r in self.burn.items()},
            "burning": self.level,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---- counting -----------------------------------------------------------------------


class _Ring:
    """Good and bad runs per bucket of `step` seconds, for the last `span` seconds: slot
    `p % n` holds bucket number `p` (its start over `step`) for `p` in `(head - n, head]`,
    older buckets are emptied as `head` moves on, so a window's sum is one or two slices."""

    __slots__ = ("bad", "good", "head", "n", "step")

    def __init__(self, step: int, span: int) -> None:
        self.n = span // step + 2
        self.step = step
        self.head = -1  # the newest bucket number; -1: none yet
        self.good = array("q", bytes(8 * self.n))
        self.bad = array("q", bytes(8 * self.n))

    def _advance(self, p: int) -> None:
        """Makes `p` the newest bucket, emptying the slots it and those before it reuse."""
        if p <= self.head:
            return
        n = self.n
        if self.head < 0 or p - self.head >= n:
            self.good, self.bad = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        else:
            for q in range(self.head + 1, p + 1):
                self.good[q % n] = self.bad[q % n] = 0
        self.head = p

    def add(self, start: int, good: int, bad: int) -> None:
        p = start // self.step
        self._advance(p)
        if p > self.head - self.n:  # else older than the ring reaches
            self.good[p % self.n] += good
            self.bad[p % self.n] += bad

    def put(self, start: int, good: int, bad: int) -> None:
        """The bucket that holds `start` counts `good` and `bad`, whatever it counted."""
        p = start // self.step
        self._advance(p)
        if p > self.head - self.n:
            self.good[p % self.n] = good
            self.bad[p % self.n] = bad

    def totals(self, now: int, spans: Sequence[int]) -> list[list[int]]:
        """[good, bad] per span: the buckets that start within `span` before `now`."""
        self._advance(now // self.step)  # buckets too old for any window are let go
        last = min(now // self.step, self.head)
        out = []
        for span in spans:
            first = max((now - span) // self.step + 1, self.head - self.n + 1)
            if first > last:
                out.append([0, 0])
                continue
            i, j = first % self.n, last % self.n
            if i <= j:
                out.append([sum(self.good[i : j + 1]), sum(self.bad[i : j + 1])])
            else:
                out.append([sum(self.good[i:]) + sum(self.good[: j + 1]),
                            sum(self.bad[i:]) + sum(self.bad[: j + 1])])  # fmt: skip
        return out


@dataclass(slots=True)
class _Tally:
    """What an objective has counted from the stored history."""

    objective: Objective
    minutes: _Ring = field(init=False)
    hours: _Ring = field(init=False)

    def __post_init__(self) -> None:
        self.minutes = _Ring(MINUTE, _SHORT)
        self.hours = _Ring(HOUR, self.objective.span)

    def add(self, start: int, good: int, bad: int) -> None:
        self.minutes.add(start, good, bad)
        self.hours.add(start, good, bad)


def _good_bad(b: HistoryBucket) -> tuple[int, int]:
    return b.up + b.degraded, b.down


# ---- the evaluator ------------------------------------------------------------------


class SloEvaluator:
    """Evaluates every objective once a minute; see the module docstring."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: SloMetrics,
        rollups: Rollups,
        *,
        incidents: IncidentManager | None = None,
        silences: SilenceBook | None = None,
    ) -> None:
        self.store, self.clock, self.metrics, self.rollups = store, clock, metrics, rollups
        self.incidents, self.silences = incidents, silences
        self.rules: Sequence[SeverityRule] = ()
        self.maintenance: Sequence[MaintenanceWindow] = ()
        self._objectives: dict[str, Objective] = {}  # by key
        self._tallies: dict[str, _Tally] = {}  # by key, once read from the store
        self._by_check: dict[str, list[str]] = {}  # check → keys of its objectives
        self._readings: dict[str, SloReading] = {}  # by key
        self._burning: dict[str, datetime] = {}  # key → since when it burns
        self._gone: dict[str, Objective] = {}  # removed by a reload, incidents to resolve
        self.shared = False  # a fleet's store: the rings are read back from it each round
        # Whether this replica opens and resolves the burn incident of an objective (key).
        self.leads: Callable[[str], bool] = lambda _key: True

    def configure(
        self,
        objectives: Iterable[Objective],
        rules: Sequence[SeverityRule] = (),
        maintenance: Sequence[MaintenanceWindow] = (),
    ) -> None:
        """Takes the objectives of a (re)loaded config: one that changed (target, window,
        members) starts again from the store; one that is gone loses its series."""
        self.rules, self.maintenance = rules, maintenance
        new = {o.key: o for o in objectives}
        for key, old in self._objectives.items():
            if new.get(key) != old:
                self._tallies.pop(key, None)
                self._readings.pop(key, None)
            if key not in new:
                self.metrics.remove(old.name, old.scope)
                self._burning.pop(key, None)
                self._gone[key] = old  # its burn incident, if any, is resolved next round
        self._objectives = new
        self._by_check = {}
        for key, o in new.items():
            for check in o.checks:
                self._by_check.setdefault(check, []).append(key)

    def stored(self, buckets: Sequence[HistoryBucket]) -> None:
        """Counts a batch `HistoryWriter` has just stored (its `stored` hook)."""
        if self.shared:
            return  # only this replica's runs: the round reads the fleet's from the store
        for b in buckets:
            for key in self._by_check.get(b.check, ()):
                if (tally := self._tallies.get(key)) is not None:
                    tally.add(b.start, *_good_bad(b))

    def readings(self, check: str) -> list[SloReading]:
        """The latest readings of the objectives `check` counts in: its own, its group's."""
        return [r for key in self._by_check.get(check, ()) if (r := self._readings.get(key))]

    def reading(self, scope: Scope, name: str) -> SloReading | None:
        return self._readings.get(f"slo:{scope}:{name}")

    def objectives_of(self, check: str) -> list[Objective]:
        return [self._objectives[key] for key in self._by_check.get(check, ())]

    async def evaluate(self) -> None:
        """One round: every objective's figures, metrics and burn incidents."""
        at = self.clock.now()
        now = int(at.timestamp())
        gone, self._gone = self._gone, {}
        for key, old in gone.items():
            open_ = self.incidents is not None and self.incidents.open_for(key) is not None
            if open_ and key not in self._objectives and self.leads(key):
                await self._ended(old, f"{old.name} no longer has an SLO", at)
        for key, objective in list(self._objectives.items()):
            if key not in self._tallies:
                try:
                    loaded = await self._load(objective, now)
                except StoreError as exc:  # tried again next round; the others go on
                    log.warning("slo_history_not_read", slo=objective.name, error=str(exc))
                    continue
                if self._objectives.get(key) is not objective:
                    continue  # reconfigured while it was read
                self._tallies[key] = loaded
        if self.shared:
            await self._reread(now)
        pending: dict[str, list[tuple[int, int, int]]] = {}
        for check, start, good, bad in self.rollups.outcomes():
            if check in self._by_check:
                pending.setdefault(check, []).append((start, good, bad))
        for n, (key, objective) in enumerate(list(self._objectives.items())):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands of objectives never hold the probes up
            tally = self._tallies.get(key)
            if tally is None:
                continue
            reading = self._figures(tally, pending, at, now)
            self._readings[key] = reading
            self.metrics.set(objective.name, objective.scope, objective.slo.target,
                             reading.remaining, reading.burn)  # fmt: skip
            if self.incidents is not None and self.leads(key):
                try:
                    await self._incident(reading)
                except Exception:  # one objective's trouble never stops the others
                    log.exception("slo_incident_failed", slo=objective.name)

    async def _load(self, objective: Objective, now: int) -> _Tally:
        """Counts the stored history of its checks: minutes of the last 6 h, hours of its
        span."""
        tally = _Tally(objective)
        for check in objective.checks:
            for b in await self.store.read_history(check, HOUR, now - objective.span - HOUR,
                                                   now + HOUR):  # fmt: skip
                tally.hours.add(b.start, *_good_bad(b))
            for b in await self.store.read_history(check, MINUTE, now - _SHORT - MINUTE,
                                                   now + MINUTE):  # fmt: skip
                tally.minutes.add(b.start, *_good_bad(b))
        return tally

    async def _reread(self, now: int) -> None:
        """Puts the fleet's stored counts of the last `REREAD_S` (minutes, and the hours
        they fall in) in every objective's rings; an objective whose checks the store
        cannot read keeps its counts until the next round."""
        first_minute = (now - REREAD_S) // MINUTE * MINUTE
        first_hour = first_minute // HOUR * HOUR
        cache: dict[str, tuple[list[HistoryBucket], list[HistoryBucket]]] = {}
        for n, (key, tally) in enumerate(list(self._tallies.items())):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            minutes: dict[int, tuple[int, int]] = {}
            hours: dict[int, tuple[int, int]] = {}
            try:
                for check in tally.objective.checks:
                    if check not in cache:
                        cache[check] = (
                            await self.store.read_history(
                                check, MINUTE, first_minute, now + MINUTE
                            ),
                            await self.store.read_history(check, HOUR, first_hour, now + HOUR),
                        )
                    for rows, into in zip(cache[check], (minutes, hours), strict=True):
                        for b in rows:
                            good, bad = into.get(b.start, (0, 0))
                            g, d = _good_bad(b)
                            into[b.start] = (good + g, bad + d)
            except StoreError as exc:
                log.warning("slo_history_not_read", slo=tally.objective.name, error=str(exc))
                continue
            if self._tallies.get(key) is not tally:
                continue  # reconfigured meanwhile
            for start in range(first_minute, now + 1, MINUTE):
                tally.minutes.put(start, *minutes.get(start, (0, 0)))
            for start in range(first_hour, now + 1, HOUR):
                tally.hours.put(start, *hours.get(start, (0, 0)))

    def _figures(
        self,
        tally: _Tally,
        pending: Mapping[str, list[tuple[int, int, int]]],
        at: datetime,
        now: int,
    ) -> SloReading:
        o = tally.objective
        window = int(o.slo.window.total_seconds())
        short = [s for s in BURN_WINDOWS.values() if s <= _SHORT]
        spans = [*short, BURN_WINDOWS["3d"], window]
        counts = tally.minutes.totals(now, short)
        counts += tally.hours.totals(now, [BURN_WINDOWS["3d"], window])
        for check in o.checks:
            for start, good, bad in pending.get(check, ()):
                for j, span in enumerate(spans):
                    if now - start < span:
                        counts[j][0] += good
                        counts[j][1] += bad
        target = o.slo.target
        burn = {
            name: burn_rate(counts[j][0], counts[j][1], target)
            for name, j in ((n, spans.index(s)) for n, s in BURN_WINDOWS.items())
        }
        good, bad = counts[-1]
        return SloReading(o, at, good, bad, budget_remaining(good, bad, target), burn,
                          burn_level(burn))  # fmt: skip

    async def _incident(self, reading: SloReading) -> None:
        assert self.incidents is not None  # noqa: S101  the caller checked
        o, level, now = reading.objective, reading.level, reading.at
        if level is None:
            self._burning.pop(o.key, None)
            if self.incidents.open_for(o.key) is None:
                return  # the common case: no burn, nothing open
            await self._ended(
                o, f"{o.name} no longer burns its error budget ({_left(reading)})", now
            )
            return
        since = self._burning.setdefault(o.key, now)
        verdict = classify(self.rules, self.situation(o, level, now - since, now))
        message = (
            f"{o.name} burns its error budget {level}: {_why(level, reading.burn)} "
            f"(SLO {o.slo.describe()})"
        )
        result = self._result(o, Outcome.DOWN, FailureKind.SLO_BURN, message, now)
        silences = self.silences.active(now) if self.silences is not None else []
        held = suppression(self.maintenance, silences, o.name, o.kind, o.tags, now)
        title = f"{o.name} burns its error budget (SLO {o.slo.describe()})"
        await self.incidents.on_check(
            CheckEvent(
                check=o.name,
                key=o.key,
                title=title,
                result=result,
                state=AlertState.DOWN,
                previous=AlertState.DOWN,
                severity=verdict.severity,
                rule=verdict.rule,
                auto_resolve=verdict.auto_resolve,
                suppressed=held,
            )
        )

    async def _ended(self, o: Objective, message: str, now: datetime) -> None:
        """Resolves the objective's burn incident (as a check's recovery does)."""
        assert self.incidents is not None  # noqa: S101  the caller checked
        result = self._result(o, Outcome.UP, None, message, now)
        await self.incidents.on_check(
            CheckEvent(
                check=o.name,
                key=o.key,
                title=message,
                result=result,
                state=AlertState.UP,
                previous=AlertState.DOWN,
                severity=None,
                rule="default",
            )
        )

    @staticmethod
    def situation(
        o: Objective, level: BurnLevel, burning_for: timedelta, now: datetime
    ) -> Situation:
        """What the severity rules are asked about a burning objective."""
        return Situation(
            check=o.name, kind=o.kind, tags=o.tags, failure=FailureKind.SLO_BURN.value,
            state=AlertState.DOWN, failing_for=burning_for, now=now, burn_rate=level,
        )  # fmt: skip

    @staticmethod
    def _result(
        o: Objective, outcome: Outcome, failure: FailureKind | None, message: str, now: datetime
    ) -> CheckResult:
        return CheckResult(check=o.name, kind=o.kind, outcome=outcome, failure=failure,
                           message=message, started_at=now, duration_s=0.0)  # fmt: skip


def _left(reading: SloReading) -> str:
    if reading.remaining is None:
        return "no runs in the window"
    return f"{max(reading.remaining, -99.99) * 100:.1f}% of the budget left"
