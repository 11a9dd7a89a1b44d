"""Persisted run history: the pipeline's per-minute rollups, the writer that flushes them in
batches, and history that outlives the process and its backup."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config.loader import parse_config
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.history import (
    FLUSH_S,
    HistoryView,
    HistoryWriter,
    Rollups,
    latency_quantile,
    uptime_percent,
)
from monitor.store.base import HOUR, MINUTE, HistoryBucket
from monitor.store.sqlite import SqliteStore
from monitor.web.api import build_app
from monitor.web.history import HistoryApi
from tests.fakes import FakeClock, MemoryStore, settle
from tests.proc import wait_for

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # FakeClock's start, on a minute
S0 = int(T0.timestamp())


def result(
    check: str, second: float, outcome: Outcome = Outcome.UP, ms: float = 120
) -> CheckResult:
    failure = None if outcome is Outcome.UP else FailureKind.HTTP_STATUS
    return CheckResult(check, "http", outcome, failure, "", T0 + timedelta(seconds=second),
                       ms / 1000)  # fmt: skip


def test_rollups_count_each_run_into_its_minute() -> None:
    rollups = Rollups()
    rollups.add(result("web", 1, ms=80))
    rollups.add(result("web", 30, Outcome.DOWN, ms=3000))
    rollups.add(result("web", 59, Outcome.DEGRADED, ms=400))
    rollups.add(result("web", 40, Outcome.DOWN, ms=9), blind=True)  # not a look at the asset
    rollups.add(result("web", 61))
    rollups.add(result("api", 5))
    assert rollups.take(S0 + 60) == [
        HistoryBucket("web", MINUTE, S0, up=1, degraded=1, down=1, blind=1, sum_ms=3480,
                      max_ms=3000, latency=(1, 0, 1, 0, 0, 1, 0, 0)),
        HistoryBucket("api", MINUTE, S0, up=1, sum_ms=120, max_ms=120,
                      latency=(0, 1, 0, 0, 0, 0, 0, 0)),
    ]  # fmt: skip
    assert rollups.take(S0 + 60) == []  # the next minute is not over
    [rest] = rollups.take()
    assert (rest.start, rest.up) == (S0 + 60, 1)


async def test_the_writer_stores_finished_minutes_in_one_batch_a_minute() -> None:
    clock, store, rollups = FakeClock(T0), MemoryStore(), Rollups()
    writes: list[int] = []
    add = store.add_history

    async def counting(buckets: Sequence[HistoryBucket]) -> None:
        writes.append(len(buckets))
        await add(buckets)

    store.add_history = counting  # type: ignore[method-assign]
    writer = HistoryWriter(rollups, store, clock)
    task = asyncio.create_task(writer.run())
    try:
        for second in range(0, 90, 10):  # 9 runs of each of 3 checks over 90 s
            for check in ("a", "b", "c"):
                rollups.add(result(check, second))
        await settle()
        assert writes == []  # no write per probe
        await clock.advance(FLUSH_S)
        await settle()
        assert writes == [3]  # the first minute of all three checks, in one write
        hours = await store.read_history("a", HOUR, S0, S0 + HOUR)
        assert [b.up for b in hours] == [6]
        await writer.flush(everything=True)  # a stop: the minute in progress too
        assert [b.up for b in await store.read_history("a", HOUR, S0, S0 + HOUR)] == [9]
        assert [b.up for b in await store.read_history("a", MINUTE, S0, S0 + HOUR)] == [6, 3]
    finally:
        task.cancel()


async def test_a_failing_store_keeps_the_minutes_for_the_next_flush() -> None:
    clock, store, rollups = FakeClock(T0), MemoryStore(), Rollups()
    writer = HistoryWriter(rollups, store, clock)
    rollups.add(result("web", 1))
    await clock.advance(60)
    real = store.add_history

    async def down(buckets: Sequence[HistoryBucket]) -> None:
        raise StoreError("database is down")

    store.add_history = down  # type: ignore[method-assign]
    await writer.flush()  # no exception past the writer
    rollups.add(result("web", 2, Outcome.DOWN))
    store.add_history = real  # type: ignore[method-assign]
    await writer.flush()
    [minute] = await store.read_history("web", MINUTE, S0, S0 + 60)
    assert (minute.up, minute.down) == (1, 1)


async def test_history_survives_a_restart_and_a_backup(aiohttp_server, tmp_path: Path) -> None:
    async def site(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", site)
    server = await aiohttp_server(app)
    config = parse_config(
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        f"checks:\n"
        f'  - {{name: site, kind: http, url: "http://127.0.0.1:{server.port}/", interval: 30s}}\n',
        "monitors.yaml",
        {},
    )
    path = tmp_path / "state" / "monitor.sqlite3"
    clock = FakeClock(T0)
    daemon = App(config, clock=clock, store=SqliteStore(path), env={}, install_signals=False)
    running = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: daemon.ready, what="ready")

        async def ran(n: int) -> None:
            while len(daemon.results.recent_runs("site")) < n:
                await clock.advance(30)
                await asyncio.sleep(0.02)

        await asyncio.wait_for(ran(3), 15)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(running, 15)
    runs = len(daemon.results.recent_runs("site"))
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        hours = await reopened.read_history("site", HOUR, 0, S0 + 10 * HOUR)
        assert sum(b.up for b in hours) == runs  # every run, the last minute's too
        await reopened.backup(tmp_path / "backup.sqlite3")
    finally:
        await reopened.close()
    copy = SqliteStore(tmp_path / "backup.sqlite3")
    await copy.open()
    try:
        minutes = await copy.read_history("site", MINUTE, 0, S0 + 10 * HOUR)
        assert sum(b.up for b in minutes) == runs
    finally:
        await copy.close()


# --- uptime and the history route ------------------------------------------------------


def hour_bucket(check: str, hours_ago: int, *, up: int = 0, degraded: int = 0, down: int = 0,
                blind: int = 0, ms: float = 120) -> HistoryBucket:  # fmt: skip
    timed = up + degraded + down
    latency = [0] * 8
    latency[sum(ms > b for b in (100, 250, 500, 1000, 2500, 5000, 10000))] = timed
    return HistoryBucket(check, MINUTE, S0 - hours_ago * HOUR, up, degraded, down, blind,
                         ms * timed, ms if timed else 0.0, tuple(latency))  # fmt: skip


def test_uptime_counts_degraded_as_up_and_ignores_blind_runs() -> None:
    assert uptime_percent(HistoryBucket("w", HOUR, 0, up=6, degraded=1, down=1, blind=5)) == 87.5
    assert uptime_percent(HistoryBucket("w", HOUR, 0, blind=5)) is None  # no look: no figure
    assert uptime_percent(HistoryBucket("w", HOUR, 0)) is None


def test_latency_quantiles_read_the_histogram() -> None:
    b = HistoryBucket("w", HOUR, 0, up=20, sum_ms=0, max_ms=4000,
                      latency=(10, 8, 0, 0, 1, 1, 0, 0))  # fmt: skip
    assert latency_quantile(b, 0.5) == 100  # the 10th of 20 is in the first bucket
    assert latency_quantile(b, 0.95) == 2500
    assert latency_quantile(b, 1.0) == 4000  # never above the slowest run
    assert latency_quantile(HistoryBucket("w", HOUR, 0, blind=3), 0.5) is None


@pytest.fixture
async def history_client(aiohttp_client: Any) -> Any:
    clock, store = FakeClock(T0 + timedelta(minutes=30)), MemoryStore()
    await store.add_history([
        hour_bucket("web", 0, up=9, down=1),  # this hour
        hour_bucket("web", 5, up=10, blind=4, ms=3000),  # within 24 h
        hour_bucket("web", 30, down=10),  # 7 d, not 24 h
        hour_bucket("web", 24 * 20, degraded=10),  # 30 d
        hour_bucket("web", 24 * 60, down=20),  # 90 d
        hour_bucket("web", 24 * 100, down=50),  # past every window
    ])  # fmt: skip
    api = HistoryApi(HistoryView(store, clock), lambda name: name in {"web", "quiet"})
    return await aiohttp_client(build_app(CollectorRegistry(), lambda: True, history=api))


async def test_the_history_route_gives_uptime_per_window_and_buckets(history_client: Any) -> None:
    response = await history_client.get("/api/assets/web/history?window=24h")
    assert response.status == 200
    doc = await response.json()
    assert doc["uptime_percent"] == {"24h": 95.0, "7d": 63.333, "30d": 72.5, "90d": 48.333}
    assert (doc["window"], doc["resolution"], doc["runs"], doc["blind_runs"]) == (
        "24h",
        "1h",
        24,
        4,
    )
    assert [(b["start"], b["up"], b["uptime_percent"]) for b in doc["buckets"]] == [
        ("2026-11-02T07:00:00+00:00", 10, 100.0), ("2026-11-02T12:00:00+00:00", 9, 90.0),
    ]  # fmt: skip
    assert doc["latency_ms"] == {"p50": 250, "p95": 3000.0, "mean": 1560.0, "max": 3000.0}
    month = await (await history_client.get("/api/assets/web/history")).json()
    assert (month["window"], month["resolution"], len(month["buckets"])) == ("30d", "1d", 3)


async def test_no_data_is_null_and_bad_requests_are_clear(history_client: Any) -> None:
    quiet = await (await history_client.get("/api/assets/quiet/history?window=90d")).json()
    assert set(quiet["uptime_percent"].values()) == {None}
    assert quiet["buckets"] == []
    assert quiet["latency_ms"]["p95"] is None
    missing = await history_client.get("/api/assets/nope/history")
    assert missing.status == 404
    assert (await missing.json())["error"] == "no such check"
    bad = await history_client.get("/api/assets/web/history?window=1y")
    assert bad.status == 400
    assert "24h, 7d, 30d, 90d" in (await bad.json())["error"]


async def test_an_unexpected_error_in_a_flush_does_not_stop_the_writer() -> None:
    clock, store, rollups = FakeClock(T0), MemoryStore(), Rollups()
    real, calls = store.add_history, []

    async def once_broken(buckets: Sequence[HistoryBucket]) -> None:
        calls.append(len(buckets))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        await real(buckets)

    store.add_history = once_broken  # type: ignore[method-assign]
    task = asyncio.create_task(HistoryWriter(rollups, store, clock).run())
    try:
        rollups.add(result("web", 1))
        await clock.advance(FLUSH_S)
        await settle()
        rollups.add(result("web", 61))
        await clock.advance(FLUSH_S)
        await settle()
        assert not task.done()
        assert len(calls) == 2
        assert [b.start for b in await store.read_history("web", MINUTE, S0, S0 + HOUR)] == [
            S0 + 60
        ]
    finally:
        task.cancel()


def test_minutes_kept_through_a_store_outage_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.engine.history.MAX_PENDING", 3)
    rollups = Rollups()
    for minute_no in range(5):
        rollups.add(result("web", 60 * minute_no))
    assert rollups.give_back(rollups.take()) == 2  # the two oldest minutes go
    assert [b.start for b in rollups.take()] == [S0 + 120, S0 + 180, S0 + 240]
