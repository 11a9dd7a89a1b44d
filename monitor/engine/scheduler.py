"""Runs each check on its own fixed-rate schedule.

Each check has a steady phase: checks sharing an interval are spread evenly over it
(ordered by a stable hash of the name, so restarts keep the same phases), and later runs
follow `next = previous + interval`. The first run comes sooner: within a short start
window (`start_window`: 10 s, longer when many checks would start faster than
`limits.start_rate`, or than a rate-limited host allows), so that a check of a 15-minute
interval has a result seconds after start. The second run joins the steady phase, at
least half an interval after the first (`after_first`), so the steady state is as evenly
spread as if the start window did not exist.

A run that overruns makes the ticks it covered skip, counted, never bunched. Every
attempt holds a concurrency slot and is cut off at its timeout; nothing a check raises
stops others.

In a fleet (`engine.fleet`), a check this replica does not own (the `gate`) waits with
no tick at all until the fleet says ownership moved (`Scheduler.ownership_moved`), then
runs at its next tick on its phase if it is this replica's now; `reschedule` puts a
check it takes over on the phase the fleet left it at. A replica of three thus wakes for
its own checks only, not for the two thirds the others run.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.checks import CHECKS, Check, CheckContext
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult, FailureKind, Observation, Outcome
from monitor.core.resources import is_resource_error, starved
from monitor.engine.limits import Limiter
from monitor.metrics.exporter import Metrics

__all__ = [
    "START_WINDOW_S", "CheckRunner", "Moves", "ReloadSummary", "Scheduler", "after_first",
    "first_runs", "hashed_offset", "next_tick", "spread", "start_window",
]  # fmt: skip

log = structlog.stdlib.get_logger(__name__)

# How long past its own timeout a check may run before the scheduler cancels it. Kinds
# enforce the timeout themselves (with a message naming the phase); this is the backstop.
TIMEOUT_GUARD_S = 1.0

ResultSink = Callable[[CheckConfigBase, CheckResult], Awaitable[None]]
# Whether this daemon runs a check now (its fleet's ownership); without one, it runs all.
Gate = Callable[[str], bool]


class Moves:
    """Where the checks a gate keeps from running wait: `moved` wakes them all at once,
    to ask the gate again."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()

    def moved(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


def next_tick(planned: float, now: float, interval: float) -> tuple[float, int]:
    """The next planned start after `planned`, and how many ticks were missed.

    A tick already in the past when the previous run ends is skipped, not run late.
    """
    nxt = planned + interval
    if nxt >= now:
        return nxt, 0
    skipped = math.ceil((now - nxt) / interval)
    return nxt + skipped * interval, skipped


def hashed_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) for one check, from its name."""
    return interval * (zlib.crc32(name.encode()) / 2**32)


def spread(names_intervals: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Offsets that spread checks evenly: n checks sharing an interval start
    interval/n apart, ordered by a stable hash of their names."""
    groups: dict[float, list[str]] = defaultdict(list)
    for name, interval in names_intervals:
        groups[interval].append(name)
    offsets = {}
    for interval, names in groups.items():
        names.sort(key=lambda n: (zlib.crc32(n.encode()), n))
        step = interval / len(names)
        offsets.update({name: i * step for i, name in enumerate(names)})
    return offsets


START_WINDOW_S = 10.0  # first runs of checks with longer intervals come within this


def start_window(checks: int, start_rate: float, shortest: float = START_WINDOW_S) -> float:
    """How long first runs are spread over: `shortest`, or longer when `checks` first
    runs would otherwise start faster than `start_rate` per second."""
    return max(shortest, checks / start_rate)


def first_runs(
    checks: Iterable[tuple[str, float, str]],
    window: float,
    host_rates: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Offsets of first runs, from (name, interval, host) of each check.

    A check whose interval is within the window keeps its steady offset (`spread`). The
    others are spread evenly over the window, in the order of the stable hash; those of
    a host with a rate limit (requests per second in `host_rates`) over at least as long
    as that host needs to take them all, so that none waits in its throttle.
    """
    checks = list(checks)
    offsets = spread((name, interval) for name, interval, _ in checks)
    rates = host_rates or {}
    groups: dict[str | None, list[tuple[str, float]]] = defaultdict(list)
    for name, interval, host in checks:
        groups[host if host in rates else None].append((name, interval))
    for group, members in groups.items():
        span = window if group is None else max(window, len(members) / rates[group])
        early = [name for name, interval in members if interval > span]
        early.sort(key=lambda n: (zlib.crc32(n.encode()), n))
        step = span / len(early) if early else 0.0
        offsets.update({name: i * step for i, name in enumerate(early)})
    return offsets


def after_first(first: float, steady: float, interval: float) -> float:
    """Where `next_tick` continues from after a first run planned at `first`: one
    interval before the first steady tick (`steady` + k * interval) that is at least
    half an interval after `first`. For a first run on its steady phase, `first` itself."""
    k = math.ceil((first + interval / 2 - steady) / interval)
    return steady + (k - 1) * interval


# Failures that running out of descriptors produces (a socket or resolver that cannot open).
_BLINDING = frozenset(
    {FailureKind.DNS, FailureKind.CONNECT, FailureKind.TLS, FailureKind.DISCONNECTED,
     FailureKind.UNEXPECTED}
)  # fmt: skip


class CheckRunner:
    """One check's loop: wait for the tick, run with retries, hand the result on."""

    def __init__(
        self,
        check: Check[Any],
        clock: Clock,
        limiter: Limiter,
        metrics: Metrics,
        sink: ResultSink,
        gate: Gate | None = None,
        moves: Moves | None = None,
    ) -> None:
        config = check.config
        self.check = check
        self.config = config
        self.clock = clock
        self.limiter = limiter
        self.metrics = metrics
        self.sink = sink
        self.gate = gate
        self.moves = moves  # with a gate: where a check it keeps back waits (else: a tick)
        self.replan: tuple[float, float] | None = None  # (first, steady) after this run
        self._name, self._kind = config.name, config.kind
        self._interval_s = config.interval_s
        # A check that bounds its own run needs no second timer per run.
        self._guard_s = None if check.bounds_itself else config.timeout_s + TIMEOUT_GUARD_S
        self._retries = config.retries or 0
        self._retry_delay_s = config.retry_delay_s
        self.busy = False
        self.stopping = False
        self.skipped = 0

    async def run_once(self) -> CheckResult:
        """Runs the check with its retries and returns the result of the last attempt."""
        started_at = self.clock.now()
        t0 = self.clock.monotonic()
        attempts = 0
        while True:
            attempts += 1
            async with self.limiter.slot(self.check.target):
                obs = await self._attempt()
            if obs.failure in _BLINDING and starved():
                # Failing to resolve or connect while holding every descriptor it may: the
                # monitor could not look, the asset may be fine.
                obs = Observation.down(
                    FailureKind.MONITOR_RESOURCES,
                    f"the monitor is out of file descriptors: {obs.message}",
                )
            if obs.outcome is Outcome.UP or attempts > self._retries or self.stopping:
                break
            await self.clock.sleep_until(self.clock.monotonic() + self._retry_delay_s)
        return CheckResult(
            check=self._name,
            kind=self._kind,
            outcome=obs.outcome,
            failure=obs.failure,
            message=obs.message,
            started_at=started_at,
            duration_s=self.clock.monotonic() - t0,
            attempts=attempts,
            details=obs.details,
            phases=obs.phases,
        )

    async def _attempt(self) -> Observation:
        try:
            if self._guard_s is None:
                return await self.check.run()
            async with asyncio.timeout(self._guard_s):
                return await self.check.run()
        except TimeoutError:
            return Observation.down(
                FailureKind.TIMEOUT, f"check did not finish within {self.config.timeout_s:g}s"
            )
        except Exception as exc:
            if is_resource_error(exc):
                return Observation.down(
                    FailureKind.MONITOR_RESOURCES, f"the monitor ran out of resources: {exc}"
                )
            log.exception("check_crashed", check=self._name, kind=self._kind)
            return Observation.down(FailureKind.UNEXPECTED, f"{type(exc).__name__}: {exc}")

    async def loop(self, first_at: float, steady_at: float | None = None) -> None:
        """Runs until `stopping` is set (checked between runs) or the task is cancelled.

        The first run at `first_at`; later ones on the steady phase `steady_at` (by
        default `first_at`), the next of them at least half an interval after the first.
        """
        planned = first_at
        base = first_at if steady_at is None else after_first(first_at, steady_at, self._interval_s)
        with structlog.contextvars.bound_contextvars(check=self._name, kind=self._kind):
            while not self.stopping:
                await self.clock.sleep_until(planned)
                if self.stopping:  # set by stop() while this task slept
                    return  # type: ignore[unreachable]  # mypy cannot see the other task
                if self.gate is not None and not self.gate(self._name):
                    # Another replica runs it now: this tick passes without a run, and
                    # the next ones too until ownership moves to this replica.
                    while self.moves is not None:
                        await self.moves.wait()
                        if self.gate(self._name):
                            break
                    planned, _ = next_tick(base, self.clock.monotonic(), self._interval_s)
                    base = planned
                    continue
                self.metrics.lag.observe(max(0.0, self.clock.monotonic() - planned))
                self.busy = True
                self.metrics.running += 1
                try:
                    result = await self.run_once()
                    await self._deliver(result)
                finally:
                    self.busy = False
                    self.metrics.running -= 1
                if self.replan is not None:  # taken over while it ran: its new phase
                    first, steady = self.replan
                    self.replan = None
                    planned, base = first, after_first(first, steady, self._interval_s)
                    continue
                planned, skipped = next_tick(base, self.clock.monotonic(), self._interval_s)
                base = planned
                if skipped:
                    self.skipped += skipped
                    self.metrics.skip(self._name, self._kind, skipped)
                    log.warning("ticks_skipped", skipped=skipped, interval_s=self._interval_s)

    async def _deliver(self, result: CheckResult) -> None:
        try:
            await self.sink(self.config, result)
        except Exception:
            log.exception("result_handling_failed")


@dataclass(slots=True)
class ReloadSummary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


FIRST_STEP_S = 10e-6  # a generous cost of one check task's first step, until it sleeps


class Scheduler:
    """Owns one task per enabled check, inside the app's TaskGroup."""

    def __init__(
        self,
        tg: asyncio.TaskGroup,
        ctx: CheckContext,
        limiter: Limiter,
        metrics: Metrics,
        sink: ResultSink,
        gate: Gate | None = None,
    ) -> None:
        self._tg = tg
        self._gate = gate
        self._ctx = ctx
        self._limiter = limiter
        self._metrics = metrics
        self._sink = sink
        self._runners: dict[str, tuple[CheckRunner, asyncio.Task[None]]] = {}
        self._moves = Moves()

    @property
    def runners(self) -> dict[str, CheckRunner]:
        return {name: runner for name, (runner, _) in self._runners.items()}

    def start(self, configs: Iterable[CheckConfigBase]) -> None:
        """Starts every check: first runs spread over the start window, later runs
        evenly over their intervals.

        Every check is built before the spread's start is taken, and the tasks are made
        in the order of their first runs: with thousands of checks, building them takes
        a good part of a second, and their first steps run one after another in the
        loop's next turn; this way neither makes an early first run late.
        """
        self._start_all(list(configs))

    def _start_all(self, configs: list[CheckConfigBase]) -> None:
        """Starts `configs` (at start-up, or the new and changed ones of a reload), first
        runs within a start window, later runs spread evenly over their intervals."""
        steady = spread((c.name, c.interval_s) for c in configs)
        runners = [self._build(config) for config in configs]
        window = start_window(len(runners), self._limiter.start_rate)
        first = first_runs(
            ((r.config.name, r.config.interval_s, r.check.target) for r in runners),
            window,
            self._limiter.rates(),
        )
        runners.sort(key=lambda r: first[r.config.name])
        # The first steps of all tasks run in one turn of the loop before any timer
        # fires: the spread starts once they are expected to be done (in whole ms, so
        # nothing changes for a config of a few dozen checks).
        margin = min(1.0, math.floor(FIRST_STEP_S * len(runners) * 1000) / 1000)
        start = self._ctx.clock.monotonic() + margin
        for runner in runners:
            name = runner.config.name
            self._spawn(runner, start + first[name], start + steady[name])

    def _build(self, config: CheckConfigBase) -> CheckRunner:
        check = CHECKS[config.kind](config, self._ctx)
        self._metrics.add_check(config)
        return CheckRunner(
            check, self._ctx.clock, self._limiter, self._metrics, self._sink, self._gate,
            self._moves,
        )  # fmt: skip

    def _spawn(self, runner: CheckRunner, first_at: float, steady_at: float) -> None:
        name = runner.config.name
        task = self._tg.create_task(runner.loop(first_at, steady_at), name=f"check:{name}")
        self._runners[name] = (runner, task)

    def ownership_moved(self) -> None:
        """The gate may let checks run that it kept back: each asks it again, and one
        that may run now runs at its next tick on its phase."""
        self._moves.moved()

    def reschedule(self, name: str, first_at: float, steady_at: float) -> None:
        """Moves a check's next run to `first_at` and its later runs to the phase of
        `steady_at` (a check this daemon took over continues where the last run in the
        fleet left it). A run in flight finishes first."""
        entry = self._runners.get(name)
        if entry is None:
            return
        runner, task = entry
        if runner.busy:
            runner.replan = (first_at, steady_at)
            return
        task.cancel()  # asleep until its next tick: nothing to lose
        self._spawn(runner, first_at, steady_at)

    async def apply(self, configs: Iterable[CheckConfigBase]) -> ReloadSummary:
        """Brings the running checks in line with a new config: unchanged ones keep
        their schedule, changed ones restart, removed ones stop, new ones start."""
        wanted = {c.name: c for c in configs}
        summary = ReloadSummary()
        for name in list(self._runners):
            runner, _ = self._runners[name]
            new = wanted.get(name)
            if new == runner.config:
                summary.unchanged += 1
                continue
            await self._cancel(name)
            if new is None:
                self._metrics.remove_check(runner.config)
                summary.removed.append(name)
            else:
                summary.changed.append(name)
        starting = [c for name, c in wanted.items() if name not in self._runners]
        for config in starting:
            if config.name not in summary.changed:
                summary.added.append(config.name)
        self._start_all(starting)
        return summary

    async def _cancel(self, name: str) -> None:
        runner, task = self._runners.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        runner.check.close()

    async def stop(self, grace_s: float) -> int:
        """Takes no new runs; lets runs in flight finish within `grace_s`, then cancels
        what is left. Returns how many runs had to be cancelled."""
        pending = []
        for runner, task in self._runners.values():
            runner.stopping = True
            if runner.busy:
                pending.append(task)
            else:
                task.cancel()  # asleep until its next tick: nothing to lose
        late: set[asyncio.Task[None]] = set()
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                task.cancel()
        await asyncio.gather(*(t for _, t in self._runners.values()), return_exceptions=True)
        for runner, _ in self._runners.values():
            runner.check.close()
        self._runners.clear()
        return len(late)
