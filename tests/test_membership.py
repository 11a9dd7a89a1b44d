"""Membership on a real PostgreSQL server (the private cluster): replicas register and
beat, liveness is judged by the database's clock only, the live set is exported as
`monitor_replicas_live` and shown in `/readyz`."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.core.errors import StoreError
from monitor.engine.membership import Membership, this_replica
from monitor.metrics.exporter import Metrics
from monitor.store.postgres import MIGRATIONS, PostgresStore
from monitor.store.replicas import Replica, ReplicaBook, ReplicaId
from monitor.store.sqlite import SqliteStore
from monitor.web.api import build_app
from tests.fakes import FakeClock
from tests.proc import Daemon, wait_for
from tests.test_store_postgres import password_of


def replica(name: str, ttl_s: float = 15.0) -> ReplicaId:
    return ReplicaId(f"host-{name}:1:{name}", f"host-{name}", 1, "9.9.9", ttl_s)


@pytest.fixture
async def stores(pg_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def age_of(dsn: str, replica_id: str, by: timedelta) -> None:
    """Makes the database last hear from a replica `by` ago, by its own clock."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE replicas SET seen_at = now() - %s WHERE id = %s", (by, replica_id))


async def test_the_migration_creates_the_table(stores, pg_dsn) -> None:
    a, _ = stores
    assert any("CREATE TABLE replicas" in m for m in MIGRATIONS)
    assert await a.schema_version() == len(MIGRATIONS)
    assert isinstance(a, ReplicaBook)
    assert not isinstance(SqliteStore(":memory:"), ReplicaBook)  # one daemon per file


async def test_replicas_register_beat_and_go_by_the_database_clock(stores, pg_dsn) -> None:
    a, b = stores
    assert [r.id for r in await a.beat_replica(replica("a"))] == ["host-a:1:a"]
    live = await b.beat_replica(replica("b"))
    assert [r.id for r in live] == ["host-a:1:a", "host-b:1:b"]
    assert all(0 <= r.age_s < 5 for r in live)
    assert live[0] == Replica("host-a:1:a", "host-a", 1, "9.9.9", live[0].age_s)

    # b falls silent past its time to live, by the server's clock: gone for a.
    age_of(pg_dsn, "host-b:1:b", timedelta(seconds=16))
    assert [r.id for r in await a.beat_replica(replica("a"))] == ["host-a:1:a"]
    # Within it, it is still live.
    age_of(pg_dsn, "host-b:1:b", timedelta(seconds=14))
    assert len(await a.beat_replica(replica("a"))) == 2
    # A beat brings it back; a clean stop takes it out at once.
    await b.beat_replica(replica("b"))
    await b.leave_replica("host-b:1:b")
    assert [r.id for r in await a.beat_replica(replica("a"))] == ["host-a:1:a"]


async def test_a_replica_with_a_skewed_clock_is_judged_by_the_database(stores, pg_dsn) -> None:
    a, b = stores
    skewed = FakeClock()
    await skewed.advance(-600)  # ten minutes behind
    fast = FakeClock()
    await fast.advance(600)  # ten minutes ahead
    registry = CollectorRegistry()
    one = Membership(a, replica("a"), skewed, Metrics(registry))
    two = Membership(b, replica("b"), fast, Metrics(CollectorRegistry()))
    assert await one.beat()
    assert await two.beat()
    assert await one.beat()
    assert [r.id for r in one.live] == ["host-a:1:a", "host-b:1:b"]
    assert registry.get_sample_value("monitor_replicas_live") == 2
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT max(abs(extract(epoch FROM now() - seen_at))) FROM replicas"
        ).fetchone()
    assert row is not None
    assert float(row[0]) < 5  # the server's time, not either replica's


async def test_the_loop_beats_on_its_interval_and_logs_joins_and_departures(stores, pg_dsn) -> None:
    a, b = stores
    clock = FakeClock()
    registry = CollectorRegistry()
    one = Membership(a, replica("a"), clock, Metrics(registry), beat_s=5)
    task = asyncio.create_task(one.run())
    try:
        with capture_logs() as logs:
            await wait_for(lambda: len(one.live) == 1, what="first beat")
            await b.beat_replica(replica("b"))
            await clock.advance(5)
            await wait_for(lambda: len(one.live) == 2, what="b seen")
            age_of(pg_dsn, "host-b:1:b", timedelta(minutes=1))
            await clock.advance(5)
            await wait_for(lambda: len(one.live) == 1, what="b gone")
        assert registry.get_sample_value("monitor_replicas_live") == 1
        events = [(e["event"], e["replica"]) for e in logs]
        assert ("replica_joined", "host-b:1:b") in events
        assert ("replica_gone", "host-b:1:b") in events
        assert one.detail()["live"] == 1
        assert one.detail()["store_reachable"] is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await one.leave()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT id FROM replicas ORDER BY id").fetchall() == [("host-b:1:b",)]


class Unreachable:
    """A replica book whose database is away."""

    async def beat_replica(self, _replica: ReplicaId) -> list[Replica]:
        raise StoreError("postgresql://monitor@db/monitor: cannot renew replica: refused")

    async def leave_replica(self, _replica_id: str) -> None:
        raise StoreError("postgresql://monitor@db/monitor: cannot remove replica: refused")


async def test_a_database_that_is_away_is_no_live_set_and_no_crash() -> None:
    registry = CollectorRegistry()
    one = Membership(Unreachable(), this_replica(), FakeClock(), Metrics(registry))
    one.live = [Replica("x", "x", 1, "1", 0.0)]
    with capture_logs() as logs:
        assert not await one.beat()
        assert not await one.beat()
        await one.leave()
    assert one.live == []
    assert registry.get_sample_value("monitor_replicas_live") == 0
    assert one.detail()["store_reachable"] is False
    assert [e["event"] for e in logs] == ["replica_beat_failed", "replica_leave_failed"]


async def test_readyz_shows_the_fleet(aiohttp_client: Any) -> None:
    detail = {"replica": "h:1:x", "live": 2, "replicas": [], "store_reachable": True}
    app = build_app(CollectorRegistry(), lambda: True, fleet=lambda: detail)
    client = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "fleet": detail}
    plain = await aiohttp_client(build_app(CollectorRegistry(), lambda: False))
    response = await plain.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "starting"}


async def _readyz(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def _live_metric(port: int) -> float | None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        for line in (await response.text()).splitlines():
            if line.startswith("monitor_replicas_live "):
                return float(line.split()[1])
    return None


@pytest.mark.slow
async def test_two_daemons_on_one_database_see_each_other(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(
        f"""
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state",
          store: "${{MONITOR_DATABASE_URL}}"}}
checks: []
"""
    )
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    first = await Daemon(config).start()
    second = await Daemon(config).start()
    try:
        # The second saw both at its first beat; the first within one beat (5 s).
        assert (await _readyz(second.port))["fleet"]["live"] == 2
        assert await _live_metric(second.port) == 2
        await wait_for_async(lambda: _live_metric(first.port), 2, what="first sees two")
        body = await _readyz(first.port)
        assert body["status"] == "ready"
        assert len({r["id"] for r in body["fleet"]["replicas"]}) == 2
        # A clean stop leaves the live set at once; the other notices at its next beat.
        second.signal(signal.SIGTERM)
        assert await second.wait(30) == 0
        await wait_for_async(lambda: _live_metric(first.port), 1, what="first alone")
        assert first.find("replica_gone")
    finally:
        await first.kill()
        await second.kill()
    password = password_of(pg_dsn)
    for d in (first, second):
        assert password not in json.dumps(d.events) + "\n".join(d.other)


async def wait_for_async(read: Any, expected: float, *, what: str, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await read()) != expected:
        assert loop.time() < deadline, f"{what}: still {value}"
        await asyncio.sleep(0.1)
