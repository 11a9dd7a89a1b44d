"""The `confirmations` table on a real PostgreSQL server (the private cluster): requests
and their slots, exclusive claims under concurrency, never by the requester, declines,
answers woken by NOTIFY, closing and pruning. SQLite keeps no fleet, so it has none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest

from monitor.store.confirmations import LISTENING, ConfirmationBook, Seen
from monitor.store.postgres import MIGRATIONS, PostgresStore
from monitor.store.sqlite import SqliteStore
from tests.proc import wait_for


@pytest.fixture
async def stores(pg_dsn: str) -> AsyncIterator[list[PostgresStore]]:
    """Four replicas' stores on one database, each with its own pool."""
    opened = [PostgresStore(pg_dsn) for _ in range(4)]
    for s in opened:
        await s.open()
    yield opened
    for s in opened:
        await s.close()


async def test_only_the_postgresql_store_keeps_confirmations(stores) -> None:
    assert any("CREATE TABLE confirmations" in m for m in MIGRATIONS)
    assert await stores[0].schema_version() == len(MIGRATIONS)
    assert isinstance(stores[0], ConfirmationBook)
    assert not isinstance(SqliteStore(":memory:"), ConfirmationBook)


async def test_a_slot_goes_to_one_replica_never_the_requester_one_per_replica(stores) -> None:
    a, b, c, _ = stores
    request = await a.request_confirmation("site", "h1", "a", 2, 30)
    assert await a.claim_confirmation("a") is None  # never one's own request
    first = await b.claim_confirmation("b")
    assert first is not None
    assert (first.request, first.check, first.definition, first.requested_by) == (
        request, "site", "h1", "a",
    )  # fmt: skip
    assert await b.claim_confirmation("b") is None  # one vantage point per replica
    second = await c.claim_confirmation("c")
    assert second is not None
    assert second.id != first.id
    assert await c.claim_confirmation("d") is None  # both slots taken


async def test_claims_are_exclusive_under_concurrency(stores) -> None:
    a = stores[0]
    for n in range(5):
        await a.request_confirmation(f"check-{n}", "h", "a", 2, 30)
    replicas = [f"r{i}" for i in range(8)]

    async def drain(store: PostgresStore, me: str) -> list[tuple[int, int]]:
        got = []
        while (slot := await store.claim_confirmation(me)) is not None:
            got.append((slot.id, slot.request))
        return got

    # Eight replicas on four pools at once: ten slots, each claimed once, never two of
    # one request by the same replica.
    results = await asyncio.gather(*(drain(stores[i % 4], me) for i, me in enumerate(replicas)))
    claimed = [slot for got in results for slot, _ in got]
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 10
    for got in results:
        requests = [r for _, r in got]
        assert len(requests) == len(set(requests))


async def test_a_declined_slot_goes_to_another_replica(stores) -> None:
    a, b, c, _ = stores
    await a.request_confirmation("site", "h1", "a", 1, 30)
    slot = await b.claim_confirmation("b")
    assert slot is not None
    await b.decline_confirmation(slot.id, "b")
    assert await b.claim_confirmation("b") is None  # not again for the one that declined
    again = await c.claim_confirmation("c")
    assert again is not None
    assert again.id == slot.id


def listening_on(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN monitor_confirmations'"
        ).fetchone()
    return row is not None and row[0] > 0


async def test_answers_wake_the_requester_and_are_read_back(stores, pg_dsn) -> None:
    a, b, c, _ = stores
    notices: list[str] = []
    listening = asyncio.create_task(a.listen_confirmations(notices.append))
    try:
        await wait_for(lambda: listening_on(pg_dsn), what="LISTEN in place")
        await wait_for(lambda: notices == [LISTENING], what="the store saying it listens")
        request = await a.request_confirmation("site", "h1", "a", 2, 30)
        await wait_for(lambda: f"request:{request}" in notices, what="request notice")
        one, two = await b.claim_confirmation("b"), await c.claim_confirmation("c")
        assert one is not None
        assert two is not None
        await b.answer_confirmation(one.id, "b", "host-b", Seen.DOWN, "http_status", "HTTP 500")
        await wait_for(lambda: f"answer:{request}" in notices, what="answer notice")
        # Only the replica that claimed a slot answers it, once.
        await c.answer_confirmation(one.id, "c", "host-c", Seen.UP, None, "HTTP 200")
        await c.answer_confirmation(two.id, "c", "host-c", Seen.BLIND, "rate_limited", "429")
        await b.answer_confirmation(one.id, "b", "host-b", Seen.UP, None, "late")
        answers = await a.confirmation_answers(request)
        assert [(x.replica, x.host, x.seen, x.failure, x.message) for x in answers] == [
            ("b", "host-b", Seen.DOWN, "http_status", "HTTP 500"),
            ("c", "host-c", Seen.BLIND, "rate_limited", "429"),
        ]
        assert answers[0].at.tzinfo is not None
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_closed_and_expired_requests_are_taken_by_nobody(stores, pg_dsn) -> None:
    a, b, _, _ = stores
    closed = await a.request_confirmation("site", "h1", "a", 1, 30)
    await a.close_confirmation(closed)
    await a.request_confirmation("docs", "h2", "a", 1, 30)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE confirmations SET open_until = now() - interval '1s'"
                     " WHERE check_name = 'docs'")  # fmt: skip
    assert await b.claim_confirmation("b") is None


async def test_rows_older_than_a_day_are_pruned(stores, pg_dsn) -> None:
    a, _, _, _ = stores
    old = await a.request_confirmation("old", "h", "a", 2, 30)
    new = await a.request_confirmation("new", "h", "a", 1, 30)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "UPDATE confirmations SET requested_at = now() - %s WHERE request = %s",
            (timedelta(hours=25), old),
        )
    assert await a.prune_confirmations(86400) == 2
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT DISTINCT request FROM confirmations").fetchall()
    assert rows == [(new,)]
