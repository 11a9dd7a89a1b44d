from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, Literal

import pytest
from structlog.testing import capture_logs

from monitor.checks import CHECKS, Check, CheckContext
from monitor.config.loader import LimitsConfig, parse_config
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult, FailureKind, Observation, Outcome
from monitor.engine.limits import Limiter
from monitor.engine.scheduler import (
    CheckRunner,
    Scheduler,
    after_first,
    first_runs,
    hashed_offset,
    next_tick,
    spread,
    start_window,
)
from monitor.metrics.exporter import Metrics
from tests.fakes import FakeClock, settle


@pytest.mark.parametrize(
    ("planned", "now", "interval", "expected"),
    [
        (0.0, 0.2, 10.0, (10.0, 0)),  # a quick run: the next tick as planned
        (0.0, 10.0, 10.0, (10.0, 0)),  # ended exactly on the next tick: run it
        (0.0, 10.5, 10.0, (20.0, 1)),  # overran one tick: skip it
        (0.0, 35.0, 10.0, (40.0, 3)),  # overran three
        (100.0, 100.0, 0.5, (100.5, 0)),
    ],
)
def test_next_tick(
    planned: float, now: float, interval: float, expected: tuple[float, int]
) -> None:
    assert next_tick(planned, now, interval) == expected


def test_spread_puts_equal_intervals_evenly_apart() -> None:
    names = [(f"check-{i}", 30.0) for i in range(1000)] + [("slow", 300.0)]
    offsets = spread(names)
    same = sorted(offsets[f"check-{i}"] for i in range(1000))
    gaps = [b - a for a, b in itertools.pairwise(same)]
    assert min(gaps) == pytest.approx(0.03)  # 30 s / 1000: never two in the same millisecond
    assert max(gaps) == pytest.approx(0.03)
    assert same[0] >= 0
    assert same[-1] < 30
    assert offsets["slow"] == 0.0  # alone in its interval


def test_spread_is_stable_across_restarts() -> None:
    names = [(f"c{i}", 60.0) for i in range(50)]
    assert spread(names) == spread(list(reversed(names)))
    assert 0 <= hashed_offset("c1", 60.0) < 60.0


def test_start_window_grows_with_the_checks_it_starts() -> None:
    assert start_window(5, start_rate=100) == 10.0
    assert start_window(10_000, start_rate=100) == 100.0  # 100 first runs a second, not 1,000


def test_first_runs_come_within_the_window_evenly() -> None:
    slow = [(f"npm-{i}", 900.0, "registry.npmjs.org") for i in range(100)]
    quick = [("site", 5.0, "example.org")]
    offsets = first_runs(slow + quick, window=10.0)
    firsts = sorted(offsets[name] for name, _, _ in slow)
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert firsts[0] >= 0
    assert firsts[-1] < 10
    assert min(gaps) == pytest.approx(0.1)
    assert max(gaps) == pytest.approx(0.1)
    # A check whose interval is within the window keeps its steady phase.
    assert offsets["site"] == spread([("site", 5.0)])["site"]
    assert first_runs(list(reversed(slow + quick)), window=10.0) == offsets  # stable


def test_first_runs_of_a_rate_limited_host_keep_within_its_rate() -> None:
    api = [(f"gh-{i}", 600.0, "api.github.com") for i in range(60)]
    other = [(f"web-{i}", 600.0, "example.org") for i in range(10)]
    offsets = first_runs(api + other, window=10.0, host_rates={"api.github.com": 2.0})
    firsts = sorted(offsets[name] for name, _, _ in api)
    # 60 first runs at 2 a second take 30 s: spread over them, none queues in the throttle.
    assert [b - a for a, b in itertools.pairwise(firsts)] == pytest.approx([0.5] * 59)
    assert max(offsets[name] for name, _, _ in other) < 10


@pytest.mark.parametrize(
    ("first", "steady", "interval", "second"),
    [
        (7.0, 7.0, 10.0, 17.0),  # first run on its steady phase: as before
        (3.0, 600.0, 900.0, 600.0),  # the steady tick is far enough: join it
        (3.0, 5.0, 900.0, 905.0),  # too close to the first run: the one after
        (3.0, 400.0, 900.0, 1300.0),  # 397 s < half an interval
        (3.0, 453.0, 900.0, 453.0),  # exactly half an interval
    ],
)
def test_after_first_joins_the_steady_phase(
    first: float, steady: float, interval: float, second: float
) -> None:
    base = after_first(first, steady, interval)
    assert next_tick(base, first + 0.1, interval) == (second, 0)


# A scripted check kind, registered for these tests only.
class ScriptedConfig(CheckConfigBase):
    kind: Literal["scripted"]


class ScriptedCheck(Check[ScriptedConfig]):
    Config = ScriptedConfig
    scripts: ClassVar[dict[str, Callable[[], Any]]] = {}

    def __init__(self, config: ScriptedConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        self.calls: list[float] = []

    async def run(self) -> Observation:
        self.calls.append(self.ctx.clock.monotonic())
        outcome: Observation = await self.scripts[self.config.name]()
        return outcome


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], Any]]:
    monkeypatch.setitem(CHECKS, "scripted", ScriptedCheck)
    ScriptedCheck.scripts = {}
    return ScriptedCheck.scripts


def make_config(name: str = "a", **fields: Any) -> CheckConfigBase:
    from monitor.core.configtypes import Defaults

    return ScriptedConfig(name=name, kind="scripted", **fields).resolved(Defaults())


async def up() -> Observation:
    return Observation.up()


async def down() -> Observation:
    return Observation.down(FailureKind.CONNECT, "refused")


class Sink:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    async def __call__(self, _config: CheckConfigBase, result: CheckResult) -> None:
        self.results.append(result)


def runner_for(
    config: CheckConfigBase, clock: FakeClock, metrics: Metrics, sink: Sink
) -> CheckRunner:
    ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]  # scripted checks do no HTTP
    return CheckRunner(ScriptedCheck(config, ctx), clock, Limiter(LimitsConfig()), metrics, sink)  # type: ignore[arg-type]


class TestRunner:
    async def test_fixed_rate_independent_of_run_time(self, scripted, clock, metrics) -> None:
        async def takes_3s() -> Observation:
            await clock.sleep_until(clock.monotonic() + 3)
            return Observation.up()

        scripted["a"] = takes_3s
        sink = Sink()
        runner = runner_for(make_config(interval="10s"), clock, metrics, sink)
        task = asyncio.create_task(runner.loop(first_at=5.0))
        await clock.advance(46)
        task.cancel()
        check = runner.check
        assert isinstance(check, ScriptedCheck)
        assert check.calls == [5.0, 15.0, 25.0, 35.0, 45.0]  # not 5, 18, 31...
        assert [r.duration_s for r in sink.results] == [3.0] * 4
        assert runner.skipped == 0

    async def test_overrun_skips_and_counts_ticks(self, scripted, clock, metrics, registry) -> None:
        durations = iter([25.0, 1.0, 1.0])

        async def slow_once() -> Observation:
            await clock.sleep_until(clock.monotonic() + next(durations))
            return Observation.up()

        scripted["a"] = slow_once
        runner = runner_for(make_config(interval="10s", timeout="60s"), clock, metrics, Sink())
        task = asyncio.create_task(runner.loop(first_at=0.0))
        with capture_logs() as logs:
            await clock.advance(41)
        task.cancel()
        check = runner.check
        assert isinstance(check, ScriptedCheck)
        assert check.calls == [0.0, 30.0, 40.0]  # ticks 10 and 20 were skipped, not bunched
        assert runner.skipped == 2
        assert (
            metrics.series.value("monitor_scheduler_skipped_ticks_total", {"kind": "scripted"}) == 2
        )
        assert [e["event"] for e in logs] == ["ticks_skipped"]

    async def test_retries_within_one_run(self, scripted, clock, metrics) -> None:
        outcomes = iter([down, down, up])
        scripted["a"] = lambda: next(outcomes)()
        sink = Sink()
        runner = runner_for(make_config(retries=2, retry_delay="3s"), clock, metrics, sink)
        run = asyncio.create_task(runner.run_once())
        await clock.advance(10)
        result = await run
        assert (result.outcome, result.attempts, result.duration_s) == (Outcome.UP, 3, 6.0)

    async def test_retries_exhausted_report_last_failure(self, scripted, clock, metrics) -> None:
        scripted["a"] = down
        runner = runner_for(make_config(retries=1, retry_delay="0s"), clock, metrics, Sink())
        result = await runner.run_once()
        assert (result.outcome, result.failure, result.attempts) == (
            Outcome.DOWN,
            FailureKind.CONNECT,
            2,
        )

    async def test_a_crashing_check_is_a_result_not_a_crash(self, scripted, clock, metrics) -> None:
        async def boom() -> Observation:
            raise KeyError("bug")

        scripted["a"] = boom
        with capture_logs() as logs:
            result = await runner_for(make_config(), clock, metrics, Sink()).run_once()
        assert result.failure is FailureKind.UNEXPECTED
        assert "KeyError" in result.message
        assert logs[0]["event"] == "check_crashed"

    async def test_a_hanging_check_is_cut_off(self, scripted, clock, metrics, monkeypatch) -> None:
        monkeypatch.setattr("monitor.engine.scheduler.TIMEOUT_GUARD_S", 0.0)

        async def hang() -> Observation:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        scripted["a"] = hang
        result = await runner_for(make_config(timeout="10ms"), clock, metrics, Sink()).run_once()
        assert result.failure is FailureKind.TIMEOUT
        assert "did not finish within 0.01s" in result.message


class TestScheduler:
    async def test_many_checks_one_hanging(self, scripted, clock, metrics, monkeypatch) -> None:
        monkeypatch.setattr("monitor.engine.scheduler.TIMEOUT_GUARD_S", 0.0)

        async def hang() -> Observation:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        names = [f"c{i}" for i in range(20)]
        for name in names:
            scripted[name] = up
        scripted["c0"] = hang
        sink = Sink()
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, sink)
            scheduler.start(make_config(n, interval="10s", timeout="50ms") for n in names)
            await clock.advance(9.99)
            assert {r.check for r in sink.results} == set(names[1:])  # none waited for c0
            await scheduler.stop(grace_s=1)
        assert not scheduler.runners

    async def test_apply_keeps_unchanged_restarts_changed(self, scripted, clock, metrics) -> None:
        for name in "abc":
            scripted[name] = up
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, Sink())
            scheduler.start([make_config("a"), make_config("b"), make_config("c")])
            before = scheduler.runners
            summary = await scheduler.apply(
                [make_config("a"), make_config("b", interval="5m"), make_config("d")]
            )
            after = scheduler.runners
            assert (summary.added, summary.changed, summary.removed, summary.unchanged) == (
                ["d"], ["b"], ["c"], 1,
            )  # fmt: skip
            assert after["a"] is before["a"]
            assert after["b"] is not before["b"]
            assert set(after) == {"a", "b", "d"}
            await scheduler.stop(grace_s=1)

    async def test_first_results_within_the_window_then_spread(
        self, scripted, clock, metrics
    ) -> None:
        names = [f"npm-{i}" for i in range(30)]
        for name in [*names, "site", "new"]:
            scripted[name] = up
        sink = Sink()
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, sink)
            configs = [make_config(n, interval="15m") for n in names]
            configs.append(make_config("site", interval="5s"))
            scheduler.start(configs)
            await clock.advance(10)
            assert {r.check for r in sink.results} == {*names, "site"}
            # A check added on a reload, too, has a result within the window.
            await scheduler.apply([*configs, make_config("new", interval="10m")])
            await clock.advance(10)
            assert "new" in {r.check for r in sink.results}
            await clock.advance(3 * 900)
            await scheduler.stop(grace_s=1)
        runs = {name: [r.started_at for r in sink.results if r.check == name] for name in names}
        assert all(len(times) >= 3 for times in runs.values())
        seconds = {
            name: [(t - times[0]).total_seconds() for t in times] for name, times in runs.items()
        }
        for times in seconds.values():
            assert 450 <= times[1] < 1350  # the second run: half to one and a half intervals
            assert times[2] - times[1] == pytest.approx(900)  # then fixed-rate
        # Later runs keep the even spread over the interval: they do not bunch up in the
        # 10 s the first runs took.
        phases = sorted((runs[name][1] - runs[names[0]][0]).total_seconds() % 900 for name in names)
        assert max(b - a for a, b in itertools.pairwise(phases)) < 2 * 900 / len(names)

    async def test_a_check_the_gate_keeps_back_waits_without_ticks_until_ownership_moves(
        self, scripted, clock, metrics
    ) -> None:
        ours = {"mine"}
        asked: list[str] = []

        def gate(name: str) -> bool:
            asked.append(name)
            return name in ours

        scripted["mine"] = scripted["theirs"] = up
        sink = Sink()
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, sink, gate)
            scheduler.start(
                [make_config("mine", interval="10s"), make_config("theirs", interval="10s")]
            )
            await clock.advance(10)  # the start window: each ticked once
            assert [r.check for r in sink.results] == ["mine"]
            await clock.advance(600)  # 60 intervals: "theirs" is never asked again
            assert asked.count("theirs") == 1
            assert len([r for r in sink.results if r.check == "mine"]) == 61
            scheduler.ownership_moved()  # nothing changed for it: asked once more, no run
            await clock.advance(30)
            assert asked.count("theirs") == 2
            ours.add("theirs")
            moved_at = clock.now()
            scheduler.ownership_moved()
            await clock.advance(30)
            runs = [r.started_at for r in sink.results if r.check == "theirs"]
            # From its next tick on, within an interval, then one an interval.
            assert moved_at <= runs[0] <= moved_at + timedelta(seconds=10)
            assert len(runs) >= 3
            assert {(b - a).total_seconds() for a, b in itertools.pairwise(runs)} == {10.0}
            await scheduler.stop(grace_s=1)

    async def test_stop_lets_in_flight_runs_finish(self, scripted, clock, metrics) -> None:
        gate = asyncio.Event()

        async def waits() -> Observation:
            await gate.wait()
            return Observation.up()

        scripted["busy"], scripted["idle"] = waits, up
        sink = Sink()
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, sink)
            scheduler.start([make_config("busy"), make_config("idle", interval="1h")])
            await settle()
            assert scheduler.runners["busy"].busy
            stopping = asyncio.create_task(scheduler.stop(grace_s=5))
            await settle()
            assert not stopping.done()
            gate.set()
            assert await stopping == 0
        assert [r.check for r in sink.results if r.check == "busy"] == ["busy"]

    async def test_stop_cancels_runs_past_the_grace(self, scripted, clock, metrics) -> None:
        async def hang() -> Observation:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        scripted["a"] = hang
        async with asyncio.TaskGroup() as tg:
            ctx = CheckContext(session=None, clock=clock)  # type: ignore[arg-type]
            scheduler = Scheduler(tg, ctx, Limiter(LimitsConfig()), metrics, Sink())
            scheduler.start([make_config("a", timeout="1h")])
            await settle()
            assert await scheduler.stop(grace_s=0.01) == 1


class TestLimiter:
    async def test_per_host_bound(self) -> None:
        limiter = Limiter(LimitsConfig(max_concurrency=10, max_per_host=2))
        active = {"a": 0, "b": 0}
        peak = {"a": 0, "b": 0}

        async def use(host: str) -> None:
            async with limiter.slot(host):
                active[host] += 1
                peak[host] = max(peak[host], active[host])
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                active[host] -= 1

        await asyncio.gather(*(use(h) for h in "aaaaabbbbb"))
        assert peak == {"a": 2, "b": 2}

    async def test_global_bound(self) -> None:
        limiter = Limiter(LimitsConfig(max_concurrency=3, max_per_host=10))
        active = peak = 0

        async def use(host: str) -> None:
            nonlocal active, peak
            async with limiter.slot(host):
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0)
                active -= 1

        await asyncio.gather(*(use(f"h{i}") for i in range(12)))
        assert peak == 3

    async def test_rate_limit_paces_starts(self) -> None:
        config = parse_config(
            "limits: {rates: [{host: api, requests: 5, per: 100ms}]}\nchecks: []\n", "m", {}
        )
        limiter = Limiter(config.limits)
        loop = asyncio.get_running_loop()
        starts = []

        async def use() -> None:
            async with limiter.slot("api"):
                starts.append(loop.time())

        t0 = loop.time()
        await asyncio.gather(*(use() for _ in range(10)))
        # 10 requests at 5 per 100 ms cannot all start within the first window.
        assert max(starts) - t0 >= 0.09
        assert sum(s - t0 < 0.09 for s in starts) <= 5
