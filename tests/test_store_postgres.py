"""The PostgreSQL store against a real server: the SQLite store's behavioural tests run
again here (imported below, with `store` overridden), then what is PostgreSQL's own:
migrations, the partial unique index, atomicity, a database that goes away and comes
back, the password kept off every surface, and the daemon end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

import monitor.store.postgres as pg_store
import tests.postgres as pg_helper
from monitor.config.loader import load_config
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import EscalationMode, EscalationState, OutboxItem, OutboxStatus
from monitor.core.redact import forget_all, redact_text, remember_config
from monitor.store import Store, StoreError, public_dsn, store_for
from monitor.store.postgres import MIGRATIONS, UNREACHABLE_WAIT_S, PostgresStore
from monitor.store.sqlite import SqliteStore
from tests.postgres import TcpProxy, server_dsn
from tests.proc import Daemon, run_cli, wait_for

# The backend-neutral behaviour of the SQLite suite, run here on PostgreSQL. (Tests that
# look at the SQLite file itself, its pragmas, its backup, stay there.)
from tests.test_store import (  # noqa: F401  re-exported: pytest collects them here
    ACKED,
    RESOLVED,
    TRIGGERED,
    at,
    entry,
    incident,
    silence,
    test_acknowledged_counts_as_open,
    test_check_states_round_trip_and_delete,
    test_create_then_update_keeps_timeline_order,
    test_get_missing_incident,
    test_incident_round_trip,
    test_kv_prefix,
    test_list_incidents_order_and_filters,
    test_naive_datetimes_are_refused,
    test_open_and_latest_incident,
    test_pending_notifications_and_settling_them,
    test_satisfies_the_protocol,
    test_silence_round_trip,
    test_silences_active_and_expired,
    test_timeline_data_round_trip,
    test_timelines_are_per_incident,
    test_times_in_other_zones_come_back_as_utc,
    test_update_is_atomic,
    test_update_of_missing_incident_raises,
)


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    yield s
    await s.close()


def count_rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def password_of(dsn: str) -> str:
    password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    assert isinstance(password, str), "the test server has a password"
    assert len(password) >= 8
    return password


# --- schema ------------------------------------------------------------------------------


async def test_migrations_from_empty_and_idempotent(pg_dsn: str) -> None:
    first = PostgresStore(pg_dsn)
    await first.open()
    assert await first.schema_version() == len(MIGRATIONS)
    made = await first.create_incident(incident(), [entry("opened")])
    await first.close()
    # Opening again (a restart, or a second process) applies nothing and loses nothing.
    again = PostgresStore(pg_dsn)
    await again.open()
    try:
        assert await again.schema_version() == len(MIGRATIONS)
        assert await again.get_incident(made.id) == made
        assert (await again.create_incident(incident("z"), [])).id > made.id
    finally:
        await again.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT version FROM monitor_schema").fetchall()
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'incidents' AND table_schema = current_schema()"
            ).fetchall()
        )
    assert rows == [(len(MIGRATIONS),)]
    assert types["opened_at"] == "timestamp with time zone"
    assert types["id"] == "bigint"
    assert types["last_good"] == "jsonb"


async def test_concurrent_opens_migrate_once(pg_dsn: str) -> None:
    stores = [PostgresStore(pg_dsn) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        assert await s.schema_version() == len(MIGRATIONS)
        await s.close()


async def test_newer_schema_is_refused(pg_dsn: str) -> None:
    s = PostgresStore(pg_dsn)
    await s.open()
    await s.close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE monitor_schema SET version = version + 5")
    with pytest.raises(StoreError, match="newer than this release"):
        await PostgresStore(pg_dsn).open()


async def test_failed_migration_is_rolled_back(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        pg_store, "MIGRATIONS", (*MIGRATIONS, "CREATE TABLE extra (a int); SELECT no_such();")
    )
    with pytest.raises(StoreError, match="no_such"):
        await PostgresStore(pg_dsn).open()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT version FROM monitor_schema").fetchall() == [(len(MIGRATIONS),)]
        assert conn.execute("SELECT to_regclass('extra')").fetchone() == (None,)


# --- rules and atomicity -------------------------------------------------------------------


async def test_readings_come_back_as_written_and_once_a_cursor_is_past_them(
    store: PostgresStore,
) -> None:
    """Each check's row replaces its last; any JSON text comes back as it was written
    (quotes, backslashes, escapes, other scripts, its own spacing); a cursor leaves out
    what is older than its overlap, and a later write is read again; a replica's own rows
    can be left out."""
    odd = json.dumps({"message": 'say "hi"\\ \\u0000 ünïcødé \u2603 \n tab\t', "n": 1})
    raw = json.dumps({"m": "ünïcødé \u2603", "x": [1, 2.5, None]}, ensure_ascii=False, indent=1)
    first, second, taken = ('{"n":"first"}', '{"n": "second"}', '{"n":"taken over"}')
    await store.save_readings("r1", [("a", first), ("b", odd), ("c", raw), ("a", second)])
    now, rows = await store.load_readings(None)
    assert rows == {"a": second, "b": odd, "c": raw}
    assert json.loads(rows["b"]) == json.loads(odd)
    await store.save_readings("r2", [("b", taken)])
    _, rows = await store.load_readings(None)
    assert rows == {"a": second, "b": taken, "c": raw}
    later = now + pg_store._READINGS_OVERLAP_S + 60  # a cursor far past every row
    assert (await store.load_readings(later))[1] == {}
    _, recent = await store.load_readings(now)  # within the overlap: all again
    assert recent == rows
    await store.save_readings("r1", [])  # nothing to write: no statement, no change
    assert (await store.load_readings(None))[1] == rows
    # A replica's own rows are left out for it (a and c are r1's, b now r2's).
    assert (await store.load_readings(None, other_than="r1"))[1] == {"b": taken}
    assert (await store.load_readings(now, other_than="r2"))[1] == {"a": second, "c": raw}


async def test_one_unresolved_incident_per_key(store: PostgresStore, pg_dsn: str) -> None:
    first = await store.create_incident(incident(minutes=0), [entry("opened")])
    with pytest.raises(StoreError, match="'web' already has an incident"):
        await store.create_incident(incident(minutes=1, status=ACKED), [entry("opened")])
    assert count_rows(pg_dsn, "incidents") == 1
    assert count_rows(pg_dsn, "timeline") == 1
    await store.create_incident(incident(minutes=-10, status=RESOLVED, resolved_at=at(-5)), [])
    resolve_first = replace(first, status=RESOLVED, resolved_at=at(3))
    await store.update_incident(resolve_first, [])
    second = await store.create_incident(incident(minutes=4), [])
    with pytest.raises(StoreError, match="already has an incident"):
        await store.update_incident(replace(resolve_first, status=TRIGGERED), [entry("reopened")])
    assert await store.get_incident(first.id) == resolve_first
    assert [e.event for e in await store.timeline(first.id)] == ["opened"]
    assert await store.open_incident("web") == second


async def test_concurrent_opens_of_one_key_make_one_incident(store: PostgresStore) -> None:
    results = await asyncio.gather(
        *(store.create_incident(incident(minutes=i), [entry("opened")]) for i in range(4)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1
    assert all(isinstance(r, StoreError) for r in results if r not in made)
    assert await store.open_incident("web") == made[0]


async def test_create_is_atomic_when_the_timeline_data_is_bad(
    store: PostgresStore, pg_dsn: str
) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        await store.create_incident(incident(), [entry("fine"), entry("x", thing=object())])
    assert count_rows(pg_dsn, "incidents") == 0
    created = await store.create_incident(incident(), [entry("opened")])
    assert await store.open_incident("web") == created


async def test_create_and_update_are_atomic_when_the_timeline_insert_fails(
    store: PostgresStore, pg_dsn: str
) -> None:
    # The row, its entries and the notice are one statement: an entry the database
    # refuses leaves neither the incident nor any entry, and an update changes nothing.
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("ALTER TABLE timeline ADD CONSTRAINT no_x CHECK (event <> 'x')")
    with pytest.raises(StoreError, match="no_x"):
        await store.create_incident(incident(), [entry("opened"), entry("x")])
    assert count_rows(pg_dsn, "incidents") == 0
    assert count_rows(pg_dsn, "timeline") == 0
    created = await store.create_incident(incident(), [entry("opened"), entry("seen")])
    with pytest.raises(StoreError, match="no_x"):
        await store.update_incident(replace(created, title="changed"), [entry("ok"), entry("x")])
    assert await store.get_incident(created.id) == created
    assert [e.event for e in await store.timeline(created.id)] == ["opened", "seen"]


async def test_settle_is_one_transaction(store: PostgresStore, pg_dsn: str) -> None:
    def item(key: str) -> OutboxItem:
        return OutboxItem(0, key, "slack", "{}", at(0), at(0))

    await store.enqueue([item("a"), item("b")])
    pending = await store.pending_notifications("slack")
    bad = replace(item("c"), created_at=at(0).replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        await store.settle_notifications([p.id for p in pending], OutboxStatus.SUPERSEDED, [bad])
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("ALTER TABLE outbox ADD CONSTRAINT no_d CHECK (key <> 'd')")
    with pytest.raises(StoreError, match="no_d"):
        await store.settle_notifications(
            [p.id for p in pending], OutboxStatus.SUPERSEDED, [item("d")]
        )
    # Neither attempt left anything: both are still pending, nothing was added.
    assert [i.key for i in await store.pending_notifications("slack")] == ["a", "b"]
    await store.commit_escalation(1, None, [item("a"), item("e")])  # "a" is skipped
    assert [i.key for i in await store.pending_notifications("slack")] == ["a", "b", "e"]


async def test_other_constraint_failures_are_store_errors(store: PostgresStore) -> None:
    with pytest.raises(StoreError, match="not-null") as info:
        await store.create_incident(incident(title=None), [])
    assert "already has" not in str(info.value)


async def test_closed_store_raises(store: PostgresStore) -> None:
    await store.close()
    await store.close()
    for call in (store.open(), store.list_incidents(), store.kv_get("a"), store.outbox_depth()):
        with pytest.raises(StoreError, match="closed"):
            await call


async def test_a_store_satisfies_the_protocol(store: PostgresStore) -> None:
    as_store: Store = store
    assert await as_store.outbox_depth() == (0, None)


# --- the database going away ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def proxied(dsn: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    proxy = await TcpProxy(str(info["host"]), int(str(info["port"]))).start()
    try:
        through = dsn.replace(f"@{info['host']}:{info['port']}/", f"@127.0.0.1:{proxy.port}/")
        assert through != dsn, "a postgresql://user:password@host:port/db URL"
        yield proxy, through
    finally:
        await proxy.close()


async def test_database_lost_is_a_store_error_then_recovers(pg_dsn: str) -> None:
    async with proxied(pg_dsn) as (proxy, dsn):
        store = PostgresStore(dsn, timeout_s=1.0)
        await store.open()
        try:
            await store.save_check_state("web", CheckState(AlertState.UP))
            proxy.sever()
            for _ in range(3):  # a broken connection, then no connection at all
                with pytest.raises(StoreError, match="cannot") as info:
                    await store.save_check_state("web", CheckState(AlertState.DOWN))
                assert password_of(pg_dsn) not in str(info.value)
                assert password_of(pg_dsn) not in repr(info.value.__cause__)
            proxy.restore()

            async def works() -> bool:
                try:
                    await store.save_check_state("web", CheckState(AlertState.DOWN))
                except StoreError:
                    return False
                return True

            deadline = asyncio.get_running_loop().time() + 20
            while not await works():
                assert asyncio.get_running_loop().time() < deadline, "the pool never reconnected"
                await asyncio.sleep(0.2)
            assert (await store.load_check_states())["web"].state is AlertState.DOWN
        finally:
            await store.close()


@contextlib.asynccontextmanager
async def cut_off(pg_dsn: str, timeout_s: float) -> AsyncIterator[tuple[TcpProxy, PostgresStore]]:
    """A store reaching the database through a proxy, used once, then the proxy severed:
    the database gone while the daemon runs."""
    async with proxied(pg_dsn) as (proxy, dsn):
        store = PostgresStore(dsn, timeout_s=timeout_s)
        await store.open()
        try:
            await store.save_check_state("web", CheckState(AlertState.UP))
            proxy.sever()
            yield proxy, store
        finally:
            await store.close()


async def back_within(store: PostgresStore, seconds: float) -> None:
    """Writes until the database answers again, failing after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await store.save_check_state("web", CheckState(AlertState.DOWN))
            return
        except StoreError:
            assert loop.time() < deadline, "the pool did not reconnect in time"
            await asyncio.sleep(0.1)


async def test_an_unreachable_database_fails_calls_fast_and_is_used_at_once_when_back(
    pg_dsn: str,
) -> None:
    """Through an outage each call waits the pool's timeout only until the database is
    known unreachable; then briefly, so that a check's runs keep their interval. However
    long it lasted, the database is used again within seconds of its return."""
    async with cut_off(pg_dsn, timeout_s=2.0) as (proxy, store):
        loop = asyncio.get_running_loop()
        waits: list[float] = []
        assert store.unreachable is False
        down_at = loop.time()
        while loop.time() - down_at < 9:  # long enough to back a pool's retries off
            t0 = loop.time()
            with pytest.raises(StoreError, match="cannot save check state"):
                await store.save_check_state("web", CheckState(AlertState.DOWN))
            waits.append(loop.time() - t0)
        assert max(waits) <= 2.0 + 1.0, waits  # never more than the pool's timeout
        assert bool(store.unreachable)
        # Known unreachable after the first full wait at most: the rest are brief.
        assert all(w < UNREACHABLE_WAIT_S + 0.5 for w in waits[2:]), waits
        proxy.restore()
        await back_within(store, 4)
        assert (await store.load_check_states())["web"].state is AlertState.DOWN
        assert not store.unreachable  # a busy pool is waited for in full again
        proxy.sever()
        for _ in range(2):  # the connection in hand may fail first, then no connection
            with pytest.raises(StoreError):
                await store.save_check_state("web", CheckState(AlertState.UP))
        assert bool(store.unreachable)


async def test_calls_waiting_when_the_database_goes_away_stop_waiting_once_connecting_fails(
    pg_dsn: str,
) -> None:
    """The checks whose runs write just as the database goes away are not held for the
    pool's whole timeout each: once the pool's attempt to connect has failed, every call
    waiting gives up within a slice, and the database is known unreachable."""
    async with cut_off(pg_dsn, timeout_s=6.0) as (proxy, store):
        loop = asyncio.get_running_loop()

        async def timed(check: str) -> float:
            t0 = loop.time()
            with pytest.raises(StoreError, match="cannot save check state"):
                await store.save_check_state(check, CheckState(AlertState.DOWN))
            return loop.time() - t0

        waits = await asyncio.gather(*(timed(f"c{i}") for i in range(6)))
        assert max(waits) < 2 * UNREACHABLE_WAIT_S + 1.0, waits  # not 6 s
        assert store.unreachable
        proxy.restore()
        await back_within(store, 10)  # and it is used again once it is back
        assert not store.unreachable


async def test_a_connection_the_server_ended_is_replaced_before_a_call_uses_it(
    pg_dsn: str,
) -> None:
    store = PostgresStore(pg_dsn, timeout_s=3.0)
    await store.open()
    try:
        await store.save_check_state("web", CheckState(AlertState.UP))
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'monitor-store'"
            ).fetchall()
            assert ended
            assert all(row[0] for row in ended)
            deadline = asyncio.get_running_loop().time() + 5
            while admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'monitor-store'"
            ).fetchall():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        # Every pooled connection is dead: the calls get new ones, none fails.
        for state in (AlertState.DOWN, AlertState.UP):
            await store.save_check_state("web", CheckState(state))
            assert (await store.load_check_states())["web"].state is state
        assert not store.unreachable
    finally:
        await store.close()


async def test_unreachable_database_at_open(pg_dsn: str) -> None:
    async with proxied(pg_dsn) as (proxy, dsn):
        proxy.sever()
        with pytest.raises(StoreError, match="cannot connect") as info:
            await PostgresStore(dsn, timeout_s=1.0).open()
    assert password_of(pg_dsn) not in str(info.value)


def test_public_dsn_has_no_password() -> None:
    dsn = "postgresql://mon:s3cr3t-pw@db.example:5433/monitor?sslmode=require&password=x2"
    assert public_dsn(dsn) == "postgresql://mon@db.example:5433/monitor"
    kv = "user=mon password='s3cr et' host=db.example port=5433 dbname=monitor"
    assert public_dsn(kv) == "postgresql://mon@db.example:5433/monitor"
    assert repr(PostgresStore(dsn)) == "PostgresStore('postgresql://mon@db.example:5433/monitor')"


# --- the daemon and the CLI ------------------------------------------------------------------


def write_config(tmp_path: Path, target_port: int, extra: str = "") -> Path:
    config = tmp_path / "monitors.yaml"
    config.write_text(
        f"""
defaults: {{interval: 1s, timeout: 1s, failure_threshold: 2, success_threshold: 2}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 5s, state_dir: "{tmp_path}/state",
          store: "${{MONITOR_DATABASE_URL}}"}}
severity:
  - {{name: site-down, match: {{checks: [site], states: [down]}}, severity: P1}}
checks:
  - {{name: site, kind: http, url: "http://127.0.0.1:{target_port}/"}}
{extra}"""
    )
    return config


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def down_runs(port: int) -> float:
    _, text = await get(port, "/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("monitor_check_runs_total{") and 'outcome="down"' in line
    )


def dead_port() -> int:
    """A port nobody listens on: a check of it goes down at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_backup_says_what_to_use(pg_dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, dead_port())
    code, out, err = await run_cli(
        "backup", "-c", str(config), str(tmp_path / "b.sql"),
        env={"MONITOR_DATABASE_URL": pg_dsn},
    )  # fmt: skip
    assert code == 2, (out, err)
    assert "pg_dump" in err
    assert "MONITOR_DATABASE_URL" in err  # the command names the variable, not its value
    assert password_of(pg_dsn) not in out + err
    assert not (tmp_path / "b.sql").exists()


@pytest.mark.slow
async def test_daemon_on_postgres_keeps_incidents_across_restart(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, dead_port())
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    first = await Daemon(config).start()
    try:
        opened = await first.event("incident_opened", check="site", timeout=30)
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute("SELECT id, key, status, severity FROM incidents").fetchall()
        assert len(rows) == 1, rows
        assert (rows[0][0], rows[0][2], rows[0][3]) == (opened["incident_id"], "triggered", "P1")
        first.signal(signal.SIGTERM)
        assert await first.wait(30) == 0
    finally:
        await first.kill()
    assert not (tmp_path / "state" / "monitor.sqlite3").exists()  # no SQLite on the side

    second = await Daemon(config).start()
    try:
        # Probes run again; the open incident is found, not opened a second time.
        deadline = asyncio.get_running_loop().time() + 30
        while await down_runs(second.port) < 2:
            assert asyncio.get_running_loop().time() < deadline, "no probes after the restart"
            await asyncio.sleep(0.1)
        status, body = await get(second.port, "/api/incidents")
        assert status == 200
        assert [i["id"] for i in json.loads(body)["incidents"]] == [opened["incident_id"]]
        with psycopg.connect(pg_dsn) as conn:
            after = conn.execute("SELECT id, key, status, severity FROM incidents").fetchall()
        assert after == rows
        assert not second.find("incident_opened")
        assert not second.find("check_down")  # it remembered the check was down
    finally:
        await second.kill()
    password = password_of(pg_dsn)
    for d in (first, second):
        assert password not in json.dumps(d.events) + "\n".join(d.other)


class Target:
    """A local site whose health the test flips."""

    def __init__(self) -> None:
        self.status = 200
        self.hooks: list[dict[str, Any]] = []  # delivered
        self.hook_status = 204

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(status=self.status, text="Wing")

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.hook_status < 300:
            self.hooks.append(body)
        return web.Response(status=self.hook_status)


STEP_S = 15.0  # each step of the outage test: a step that hangs fails it with its events


@pytest.mark.slow
async def test_daemon_rides_out_a_database_outage(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_server: Any
) -> None:
    target = Target()
    app = web.Application()
    app.router.add_get("/{tail:.*}", target.handle)
    app.router.add_post("/hook", target.hook)
    server = await aiohttp_server(app)
    config = write_config(
        tmp_path, server.port,
        "notifiers:\n"
        f"  hook: {{type: webhook, url: 'http://127.0.0.1:{server.port}/hook'}}\n"
        "escalation:\n"
        "  channel: hook\n"
        "  policies: {default: {steps: [{post: hook}]}}\n",
    )  # fmt: skip
    async with proxied(pg_dsn) as (proxy, dsn):
        monkeypatch.setenv("MONITOR_DATABASE_URL", dsn)
        daemon = await Daemon(config).start()
        try:
            await daemon.event("check_up", check="site", timeout=30)
            # The database goes away; the site goes down while it is away.
            proxy.sever()
            target.status = 503
            await daemon.event("check_down", check="site", timeout=STEP_S)
            # The write of that change fails (or, had the lease run out first, the change
            # is held as an orphan's): either way it is kept for when the store is back.
            [failed] = await wait_for(
                lambda: daemon.find("result_handling_failed")[:1]
                or daemon.find("checks_orphaned")[:1],
                timeout=STEP_S, what="the failed write of the change",
            )  # fmt: skip
            if failed["event"] == "result_handling_failed":
                assert "StoreError" in json.dumps(failed)
            assert daemon.proc is not None
            assert daemon.proc.returncode is None  # still running, still probing
            status, _ = await get(daemon.port, "/healthz")
            assert status == 200
            # It comes back: the incident opens without a restart. Its page fails at first.
            target.hook_status = 503
            proxy.restore()
            opened = await daemon.event("incident_opened", check="site", timeout=STEP_S)
            await daemon.event("notification_retry", timeout=STEP_S)
            # Gone again while the page waits for its retry: the outbox pauses, the daemon
            # stays up; back again, the page is delivered, once.
            proxy.sever()
            await daemon.event("store_unavailable", component="outbox", timeout=STEP_S)
            assert daemon.proc.returncode is None
            target.hook_status = 204
            proxy.restore()
            await daemon.event("notification_sent", timeout=STEP_S)
            assert len(target.hooks) == 1, target.hooks
            with psycopg.connect(pg_dsn) as conn:
                rows = conn.execute("SELECT id, status FROM incidents").fetchall()
                sent = conn.execute("SELECT status FROM outbox").fetchall()
            assert rows == [(opened["incident_id"], "triggered")]
            assert ("sent",) in sent
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(STEP_S) == 0
        except (AssertionError, TimeoutError):
            for e in daemon.events[-60:]:  # what it did instead, shown by pytest
                print(json.dumps(e)[:300])
            raise
        finally:
            await daemon.kill()
    password = password_of(pg_dsn)
    assert password not in json.dumps(daemon.events) + "\n".join(daemon.other)


async def test_daemon_without_its_database_refuses_to_start(pg_dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, dead_port())
    async with proxied(pg_dsn) as (proxy, dsn):
        proxy.sever()
        code, out, err = await run_cli(
            "run", "-c", str(config), env={"MONITOR_DATABASE_URL": dsn}
        )  # fmt: skip
    assert code == 1, (out, err)
    assert "cannot connect" in err
    assert "@127.0.0.1:" in err  # where it looked, without the password
    assert "Connection refused" in err or "closed the connection" in err  # why
    assert password_of(pg_dsn) not in out + err
    assert "Traceback" not in err


async def test_config_secret_dsn_is_masked(pg_dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, dead_port())
    loaded = load_config(config, env={"MONITOR_DATABASE_URL": pg_dsn})
    assert loaded.daemon.store_dsn == pg_dsn
    assert pg_dsn not in repr(loaded)
    remember_config(loaded)
    password = password_of(pg_dsn)
    try:
        assert redact_text(f"failed with {password} and {pg_dsn}") == "failed with *** and ***"
        assert redact_text("monitor started") == "monitor started"  # the role is no secret
    finally:
        forget_all()


def test_missing_postgres_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(pg_helper.ENV, raising=False)
    monkeypatch.setattr(pg_helper, "find_bin", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI"), server_dsn():
        pass
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL"), server_dsn():
        pass


async def test_a_bad_store_url_is_refused_without_showing_it(tmp_path: Path) -> None:
    config = tmp_path / "monitors.yaml"
    config.write_text('daemon: {store: "mysql://mon:hunter2-pw@db/monitor"}\nchecks: []\n')
    code, out, err = await run_cli("validate", "-c", str(config))
    assert code == 1, (out, err)
    assert "daemon.store" in out + err
    assert "postgresql://" in out + err  # what is expected
    assert "hunter2" not in out + err


def test_without_psycopg_the_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "monitor.store.postgres", None)  # import fails
    with pytest.raises(StoreError, match=r"pip install 'project-asset-monitor\[postgresql\]'"):
        store_for("postgresql://mon@db/monitor", str(tmp_path))
    assert isinstance(store_for(None, str(tmp_path)), SqliteStore)  # SQLite needs nothing


async def test_escalations_round_trip(store: PostgresStore) -> None:
    made = await store.create_incident(incident(), [entry("opened")])
    state = EscalationState(
        made.id, '{"steps": []}', 2, 1, at(5), EscalationMode.ACKNOWLEDGED, 1_700_000_000
    )
    page = OutboxItem(0, f"incident:{made.id}:page", "pd", '{"x": 1}', at(0), at(1))
    await store.commit_escalation(made.id, state, [page])
    assert await store.load_escalations() == [state]
    assert (await store.load_escalations())[0].next_at.tzinfo is UTC
    moved = replace(state, step=3, next_at=at(9), mode=EscalationMode.PAGING)
    await store.commit_escalation(made.id, moved, [page])  # the same key: not twice
    assert await store.load_escalations() == [moved]
    assert [i.key for i in await store.pending_notifications("pd")] == [page.key]
    assert await store.next_notification_at("pd") == at(1)
    assert [i.key for i in await store.due_notifications("pd", at(1), 10)] == [page.key]
    assert await store.due_notifications("pd", at(0.5), 10) == []
    await store.commit_escalation(made.id, None, [])
    assert await store.load_escalations() == []


async def test_paging_has_connections_of_its_own(pg_dsn: str) -> None:
    """A page's claim, its send recorded and the notice to the leader do not wait for a
    pool busy with other writes, and come back after their connection is lost."""
    async with proxied(pg_dsn) as (proxy, dsn):
        store = PostgresStore(dsn, max_size=1, timeout_s=2.0)
        await store.open()
        release = asyncio.Event()
        held = asyncio.Event()

        async def busy() -> None:  # a long write holding the only pooled connection
            async with store._tx("hold the pool") as cur:
                await cur.execute("SELECT 1")
                held.set()
                await release.wait()

        holder = asyncio.create_task(busy())
        try:
            await held.wait()
            token = await store.acquire_lease("a")
            assert token is not None
            page = OutboxItem(0, "incident:1:0:p0s0:pd", "pd", "{}", at(0), at(0))
            await store.swap_escalation(1, None, None, [page], None)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            [claimed] = await store.claim_due("pd", at(1), token, 5) or []
            await store.update_notification(replace(claimed, status=OutboxStatus.SENT))
            await store.notify_change("a")
            assert loop.time() - t0 < 1.0  # the pool's timeout is 2 s
            assert await store.claim_due("pd", at(1), token, 5) == []
            release.set()
            await holder
            proxy.sever()
            proxy.restore()

            async def claims() -> bool:  # the lease went with the proxy: taken again
                try:
                    if not await store.renew_lease():
                        await store.acquire_lease("a")
                    again = await store.acquire_lease("a")
                    return again is not None and await store.claim_due("pd", at(1), again, 5) == []
                except StoreError:
                    return False

            deadline = loop.time() + 20
            while not await claims():
                assert loop.time() < deadline, "paging's pool never reconnected"
                await asyncio.sleep(0.2)
        finally:
            release.set()
            await asyncio.gather(holder, return_exceptions=True)
            await store.close()
