"""The paging lease on a real PostgreSQL server: one holder at a time, a new token per
holder, a holder whose session ends loses it at once, claims skip rows another
transaction holds, and changes are told between stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.core.model import EscalationState, Incident, IncidentStatus, OutboxItem, Severity
from monitor.metrics.exporter import Metrics
from monitor.paging.leader import FleetClock, Leadership
from monitor.store.postgres import LEASE_EXPIRY_S, LEASE_TIMEOUT_S, PostgresStore
from tests.fakes import FakeClock
from tests.postgres import TcpProxy
from tests.proc import wait_for

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
INCIDENT = Incident(
    id=0, key="web", title="web is down", status=IncidentStatus.TRIGGERED,
    severity=Severity.P1, opened_at=NOW, updated_at=NOW, check="web",
)  # fmt: skip


@pytest.fixture
async def stores(pg_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def end_lease_session(dsn: str) -> None:
    """Ends the session holding the lease, as the server does when its holder dies."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT backend_pid FROM leases WHERE name = 'pager'").fetchone()
        assert row is not None
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))  # waits for its end


async def test_one_holder_at_a_time_and_a_new_token_for_each(stores, pg_dsn) -> None:
    a, b = stores
    assert await a.acquire_lease("a") == 1
    assert await a.acquire_lease("a") == 1  # held already: the same token
    assert await b.acquire_lease("b") is None
    assert not await b.renew_lease()
    assert await a.renew_lease()
    end_lease_session(pg_dsn)  # a's process died, or its connection was cut
    assert not await a.renew_lease()
    assert await b.acquire_lease("b") == 2
    assert await a.acquire_lease("a") is None
    await b.release_lease()  # a clean stop: the next one takes it at once
    assert await a.acquire_lease("a") == 3


async def test_a_standby_waiting_for_the_lease_takes_it_the_moment_the_holder_goes(
    stores, pg_dsn
) -> None:
    a, b = stores
    assert await a.acquire_lease("a") == 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await b.acquire_lease("b", wait_s=0.3) is None  # held all along: after its wait
    assert 0.25 <= loop.time() - started < 1.5
    waiting = asyncio.ensure_future(b.acquire_lease("b", wait_s=1.0))
    await asyncio.sleep(0.2)  # b is queued for the lock by now
    assert not waiting.done()
    ended = loop.time()
    await asyncio.to_thread(end_lease_session, pg_dsn)  # a's process died
    assert await waiting == 2
    assert loop.time() - ended < 0.5  # at once, not at a next try
    assert await b.renew_lease()
    # A wait that ended with the lease taken leaves no lock timeout behind: its session's
    # later statements wait for row locks as long as they must.
    assert b._lease_conn is not None
    cur = await b._lease_conn.execute("SHOW lock_timeout")
    assert await cur.fetchone() == {"lock_timeout": "0"}


async def test_a_standby_does_not_listen_so_its_connection_keeps_no_notifications(
    stores,
) -> None:
    a, b = stores
    assert await a.acquire_lease("a") == 1
    assert await b.acquire_lease("b") is None
    for _ in range(5):
        await a.notify_change("a")
        assert await b.acquire_lease("b") is None  # a round trip: anything sent comes in
    assert b._lease_conn is not None
    assert not b._lease_conn._notifies_backlog  # nothing kept for a reader that never comes
    await a.release_lease()
    assert await b.acquire_lease("b") == 2  # the leader listens from then on
    await a.notify_change("a")
    assert await b.wait_changes(2, "b")


async def test_the_fence_needs_the_holder_alive_not_only_its_token(stores, pg_dsn) -> None:
    a, _ = stores
    await a.enqueue([OutboxItem(0, "k", "hook", "{}", NOW, NOW)])
    [item] = await a.pending_notifications("hook")
    token = await a.acquire_lease("a")
    assert token == 1
    assert await a.claim_notifications([item.id], token) == [item.id]
    end_lease_session(pg_dsn)  # nobody holds the lock; the token is still the last one
    assert await a.claim_notifications([item.id], token) is None


async def test_claims_skip_a_row_another_transaction_holds(stores, pg_dsn) -> None:
    a, _ = stores
    await a.enqueue([OutboxItem(0, "k1", "hook", "{}", NOW, NOW),
                     OutboxItem(0, "k2", "hook", "{}", NOW, NOW)])  # fmt: skip
    k1, k2 = await a.pending_notifications("hook")
    token = await a.acquire_lease("a")
    assert token is not None
    async with await psycopg.AsyncConnection.connect(pg_dsn) as other:
        await other.execute("SELECT * FROM outbox WHERE id = %s FOR UPDATE", (k1.id,))
        # Not waited for: skipped, claimed later.
        claimed = await asyncio.wait_for(a.claim_notifications([k1.id, k2.id], token), 2)
        assert claimed == [k2.id]
    assert await a.claim_notifications([k1.id], token) == [k1.id]
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT claim_token FROM outbox ORDER BY id").fetchall()
    assert rows == [(token,), (token,)]


async def test_changes_are_told_to_the_other_replicas_only(stores) -> None:
    a, b = stores
    assert not await b.wait_changes(0.05, "b")  # listening from now on
    await a.notify_change("a")
    assert await b.wait_changes(2, "b")
    await b.notify_change("b")
    assert not await b.wait_changes(0.2, "b")  # its own: no change


async def test_an_escalation_started_with_pages_tells_the_others_in_its_statement(stores) -> None:
    a, b = stores
    opened = await a.create_incident(INCIDENT, [])
    state = EscalationState(opened.id, "p", 0, 0, NOW)
    page = OutboxItem(0, "incident:1:p0s0:hook", "hook", "{}", NOW, NOW)
    assert not await b.wait_changes(0.05, "b")  # listening from now on
    assert await a.swap_escalation(opened.id, None, state, [page], None, tell="a")
    assert await b.wait_changes(2, "b")
    # Told by nothing else: a start that writes nothing (one runs already) tells nobody,
    # and one without `tell` neither.
    assert not await a.swap_escalation(opened.id, None, state, [page], None, tell="a")
    assert not await b.wait_changes(0.2, "b")
    other = await a.create_incident(replace(INCIDENT, key="docs"), [])
    assert await a.swap_escalation(other.id, None, replace(state, incident_id=other.id), [], None)
    assert not await b.wait_changes(0.2, "b")
    assert [i.key for i in await b.pending_notifications("hook")] == [page.key]


async def test_leadership_moves_when_the_leader_stops(stores) -> None:
    registries = (CollectorRegistry(), CollectorRegistry())
    leads = [
        Leadership(s, FakeClock(), Metrics(r), name, tick_s=0.05)
        for s, r, name in zip(stores, registries, ("a", "b"), strict=True)
    ]
    tasks = [asyncio.create_task(lead.run()) for lead in leads]
    try:
        await wait_for(lambda: sum(lead.leading for lead in leads) == 1, what="one leader")
        first = next(i for i, lead in enumerate(leads) if lead.leading)
        other = 1 - first
        assert registries[first].get_sample_value("monitor_pager_leader") == 1
        assert registries[other].get_sample_value("monitor_pager_leader") == 0
        tasks[first].cancel()
        await leads[first].release()
        await wait_for(lambda: leads[other].leading, timeout=2, what="the standby takes over")
        assert leads[other].token == 2
        assert registries[other].get_sample_value("monitor_pager_lease_token") == 2
        assert registries[first].get_sample_value("monitor_pager_leader") == 0
        assert leads[other].detail() == {"pager_leader": True, "pager_token": 2}
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_paging_reads_the_database_clock_not_a_skewed_one(stores) -> None:
    a, _ = stores
    skewed = FakeClock(datetime.now(UTC) + timedelta(minutes=10))  # ten minutes ahead
    fleet_clock = FleetClock(skewed)
    lead = Leadership(a, skewed, Metrics(CollectorRegistry()), "a", fleet_clock=fleet_clock)
    with capture_logs() as logs:
        await lead.measure_clock()
    assert abs(fleet_clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    assert abs(fleet_clock.offset + timedelta(minutes=10)) < timedelta(seconds=1)
    assert [e["event"] for e in logs] == ["clock_skew"]
    assert fleet_clock.monotonic() == skewed.monotonic()  # schedules keep their own clock


@pytest.mark.timeout(60)
async def test_a_holder_behind_a_silent_partition_is_replaced(pg_dsn: str) -> None:
    """No reset reaches either end: the holder's renewals time out and it steps down; its
    session looks alive to the server, so a standby ends it once it has not renewed for
    LEASE_EXPIRY_S, then takes the lease. The deposed token is fenced out."""
    parts = urlsplit(pg_dsn)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = await TcpProxy(parts.hostname, parts.port).start()
    behind = PostgresStore(
        urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"))
    )
    standby = PostgresStore(pg_dsn)
    await behind.open()
    await standby.open()
    try:
        first = await behind.acquire_lease("behind")
        assert first is not None
        assert await behind.renew_lease()
        proxy.stall()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await behind.renew_lease()  # no answer within LEASE_TIMEOUT_S
        assert loop.time() - started < LEASE_TIMEOUT_S + 1
        assert await standby.acquire_lease("standby") is None  # not yet: it may be alive

        async def taken() -> int | None:
            return await standby.acquire_lease("standby")

        second = None
        while second is None:
            assert loop.time() - started < LEASE_EXPIRY_S + 10, "never taken over"
            second = await taken()
            await asyncio.sleep(0.25)
        assert second == first + 1
        assert loop.time() - started >= LEASE_EXPIRY_S - 1  # not before it expired
        assert await standby.claim_notifications([], first) is None
    finally:
        await proxy.close()
        await standby.close()
        await behind.close()
