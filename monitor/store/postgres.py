"""A `Store` on PostgreSQL (`daemon.store: postgresql://…`), through psycopg 3 and its pool.

The logical schema is SQLite's (`monitor.store.sqlite`) in PostgreSQL types: `timestamptz`
for times, `bigint` identities for ids (never handed out twice), `jsonb` where JSON is
kept, and the same rules, such as at most one unresolved incident per key (a partial
unique index). Each method is one transaction on a pooled connection, so an incident row
and its timeline entries, or an outbox settlement and the items it enqueues, land
together or not at all.

A lost or refused connection is a `StoreError`, like a full disk under SQLite: the
operation fails and the caller carries on. The pool drops broken connections and opens
new ones in the background, so the store works again as soon as the server answers.

The DSN carries a password: it never appears in a message of this module (`name` is the
DSN without it), and the daemon registers it with the redaction layer.
"""

from __future__ import annotations

import asyncio
import json
import math
import select
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    aclosing,
    asynccontextmanager,
    nullcontext,
    suppress,
)
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.abc import PQGen
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from monitor.core.alertstate import CheckState
from monitor.core.errors import StoreError
from monitor.core.model import (
    EscalationMode,
    EscalationState,
    Incident,
    IncidentSource,
    IncidentStatus,
    OutboxItem,
    OutboxStatus,
    Severity,
    Silence,
    TimelineEntry,
)
from monitor.store import public_dsn
from monitor.store import rows as _rows
from monitor.store.base import (
    HOUR,
    HOUR_RETENTION_S,
    MINUTE,
    MINUTE_RETENTION_S,
    HistoryBucket,
    RunCounts,
    with_hours,
)
from monitor.store.confirmations import LISTENING, Answer, Seen, Slot
from monitor.store.readings import CHANGED_INCIDENTS, CHANGED_SILENCES, incident_changed
from monitor.store.replicas import Replica, ReplicaId
from monitor.store.sqlite import _data_json, _matchers_json

__all__ = ["MIGRATIONS", "PostgresStore"]

# Append only, like SQLite's: `monitor_schema.version` counts the scripts applied. Each
# runs in one transaction with the version bump, under an advisory lock, so two
# processes starting at once migrate once.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE check_states (
        name text PRIMARY KEY,
        state text NOT NULL,
        since timestamptz,
        ups integer NOT NULL,
        non_downs integer NOT NULL,
        bads integer NOT NULL,
        downs integer NOT NULL,
        blinds integer NOT NULL DEFAULT 0,
        seen text,
        seen_since timestamptz,
        cause text
    );
    CREATE TABLE incidents (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key text NOT NULL,
        title text NOT NULL,
        status text NOT NULL,
        severity text,
        opened_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        check_name text,
        source text NOT NULL,
        acknowledged_at timestamptz,
        resolved_at timestamptz,
        assignee text,
        rule text,
        failure text,
        message text NOT NULL,
        suppressed text,
        report_url text,
        auto_resolve boolean NOT NULL,
        reopened integer NOT NULL,
        drill boolean NOT NULL DEFAULT false,
        last_good jsonb
    );
    CREATE INDEX incidents_key ON incidents (key, opened_at);
    CREATE INDEX incidents_status ON incidents (status, opened_at);
    CREATE INDEX incidents_opened ON incidents (opened_at, id);
    -- The dedup rule itself: at most one incident per key that is not resolved.
    CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents (key) WHERE status <> 'resolved';
    CREATE TABLE timeline (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at timestamptz NOT NULL,
        event text NOT NULL,
        actor text NOT NULL,
        text text NOT NULL,
        data jsonb NOT NULL,
        count integer NOT NULL DEFAULT 1,
        last_at timestamptz
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);
    CREATE TABLE silences (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        matchers jsonb NOT NULL,
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        author text NOT NULL,
        comment text NOT NULL,
        created_at timestamptz NOT NULL,
        expired_at timestamptz
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    CREATE TABLE escalations (
        incident_id bigint PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
        policy text NOT NULL,
        step integer NOT NULL,
        pass_no integer NOT NULL,
        next_at timestamptz NOT NULL,
        mode text NOT NULL,
        epoch bigint NOT NULL DEFAULT 0
    );
    -- The payload stays text: it is the notifier's exact request body, byte for byte.
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key text NOT NULL UNIQUE,
        notifier text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL,
        next_attempt_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        status text NOT NULL DEFAULT 'pending',
        sent_at timestamptz,
        last_error text NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_due ON outbox (notifier, status, next_attempt_at);
    CREATE TABLE kv (key text PRIMARY KEY, value text NOT NULL);
    """,
    # Membership: each daemon on this database, and when the database last heard from it
    # (`seen_at` is always the server's now(), never a replica's clock).
    """
    CREATE TABLE replicas (
        id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        version text NOT NULL,
        started_at timestamptz NOT NULL,
        seen_at timestamptz NOT NULL
    );
    CREATE INDEX replicas_seen ON replicas (seen_at);
    """,
    # Run history, per check and minute (kept 48 h) or hour (kept 90 days).
    """
    CREATE TABLE history (
        check_name text NOT NULL,
        resolution integer NOT NULL,
        start bigint NOT NULL,
        up integer NOT NULL,
        degraded integer NOT NULL,
        down integer NOT NULL,
        blind integer NOT NULL,
        sum_ms double precision NOT NULL,
        max_ms double precision NOT NULL,
        latency integer[] NOT NULL,
        PRIMARY KEY (check_name, resolution, start)
    );
    CREATE INDEX history_age ON history (resolution, start);
    """,
    # Confirmation from another replica: one row per vantage point a request wants, the
    # answer written into it by the replica that claimed it (times by the server's clock).
    """
    CREATE TABLE confirmations (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request bigint NOT NULL,
        check_name text NOT NULL,
        definition text NOT NULL,
        requested_by text NOT NULL,
        requested_at timestamptz NOT NULL,
        open_until timestamptz NOT NULL,
        claimed_by text,
        claimed_at timestamptz,
        declined text[] NOT NULL DEFAULT '{}',
        seen text,
        answered_host text,
        failure text,
        message text,
        answered_at timestamptz
    );
    CREATE INDEX confirmations_request ON confirmations (request);
    CREATE INDEX confirmations_open ON confirmations (id) WHERE claimed_by IS NULL AND seen IS NULL;
    CREATE INDEX confirmations_age ON confirmations (requested_at);
    CREATE SEQUENCE confirmation_requests;
    """,
    # An incident's public note (what the status page says of it), and the resolved
    # incidents by when they were resolved (the public incident history).
    """
    ALTER TABLE incidents ADD COLUMN public_note text;
    CREATE INDEX incidents_resolved ON incidents (resolved_at, id) WHERE status = 'resolved';
    """,
    # Check ownership: the config hash each replica beats with, and when each check last
    # ran anywhere in the fleet (by the server's clock), for a replica that takes it over.
    """
    ALTER TABLE replicas ADD COLUMN config_hash text NOT NULL DEFAULT '';
    CREATE TABLE check_runs (
        check_name text PRIMARY KEY,
        ran_at timestamptz NOT NULL,
        replica text NOT NULL
    );
    """,
    # What every replica serves: the last reading of each check, written by its owner.
    """
    CREATE TABLE check_readings (
        check_name text PRIMARY KEY,
        replica text NOT NULL,
        reading text NOT NULL,
        written_at timestamptz NOT NULL
    );
    CREATE INDEX check_readings_written ON check_readings (written_at);
    """,
    # Paging among replicas: the lease's fencing token (one more each time a replica takes
    # it) and the session that holds its advisory lock; which token claimed a notification.
    """
    CREATE TABLE leases (
        name text PRIMARY KEY,
        token bigint NOT NULL,
        holder text NOT NULL,
        backend_pid integer NOT NULL,
        acquired_at timestamptz NOT NULL,
        renewed_at timestamptz NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN claim_token bigint;
    ALTER TABLE outbox ADD COLUMN claimed_at timestamptz;
    """,
)


_LOCK_ID = 0x6D6F6E69746F72  # "monitor": the advisory lock that serializes migrations
# The paging lease: a session advisory lock (key: this class and the schema's hash, so
# schemas on one server lead apart) on a connection of its own, held while that session
# lives: PostgreSQL lets it go the moment the holder's process dies or its connection is
# cut. The server probes an idle lease connection (TCP keepalives, user timeout), so a
# holder behind a partition loses it within seconds too.
_LEASE = "pager"  # the lease's row; its lock's keys: 28016 ("mp") and the schema's hash
_TRY_LOCK = b"SELECT pg_try_advisory_lock(28016, hashtext(current_schema())) AS got"
# Waits for the lock up to the session's `lock_timeout` (set per call, in milliseconds).
_WAIT_LOCK = (
    b"SELECT set_config('lock_timeout', %s, false),"
    b" pg_advisory_lock(28016, hashtext(current_schema())), true AS got"
)
_UNLOCK = b"SELECT pg_advisory_unlock(28016, hashtext(current_schema()))"
_LEASE_SETTINGS = (
    "SET tcp_keepalives_idle = 1",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 2",
    "SET tcp_user_timeout = 3000",
)
# The fence: the token is the current one and the session that took it still holds the
# lock. FOR SHARE: a new holder's token increment waits for this transaction to end.
_FENCE = b"""
SELECT l.token FROM leases l
WHERE l.name = 'pager' AND l.token = %(token)s AND EXISTS (
    SELECT 1 FROM pg_locks k
    WHERE k.pid = l.backend_pid AND k.locktype = 'advisory' AND k.granted
      AND k.classid = 28016::oid AND k.objid = hashtext(current_schema())::oid
      AND k.objsubid = 2
)
FOR SHARE OF l
"""
# `claim_due` in one statement: the fence, then the due heads of their incidents' lines
# claimed; one row with `held` false when fenced out, with a null id when none is due.
_CLAIM_DUE = (
    b"WITH fence AS ("
    + _FENCE
    + b"""),
claimed AS (
    UPDATE outbox SET claim_token = %(token)s, claimed_at = now() WHERE id IN (
        SELECT o.id FROM outbox o
        WHERE o.notifier = %(notifier)s AND o.status = 'pending'
          AND o.next_attempt_at <= %(now)s AND EXISTS (SELECT 1 FROM fence)
          AND NOT (o.key ~ '^incident:[0-9]+:' AND EXISTS (
              SELECT 1 FROM outbox p
              WHERE p.notifier = o.notifier AND p.status = 'pending' AND p.id < o.id
                AND split_part(p.key, ':', 1) = 'incident'
                AND split_part(p.key, ':', 2) = split_part(o.key, ':', 2)
          ))
        ORDER BY o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED
    ) RETURNING outbox.*
)
SELECT EXISTS (SELECT 1 FROM fence) AS held, c.*
FROM (VALUES (1)) AS one (x) LEFT JOIN claimed c ON true ORDER BY c.id
"""
)

log = structlog.stdlib.get_logger(__name__)

POOL_TIMEOUT_S = 5.0  # how long a call waits for a connection before it is a StoreError
# Once the database is known unreachable (a call found no connection and connecting had
# failed), a call waits only this long, until one succeeds again: each check's run goes
# on at its interval through an outage instead of waiting the full timeout per write.
UNREACHABLE_WAIT_S = 0.5
RECONNECT_S = 3.0  # a pool's attempt to replace a connection retries for this long
CONNECT_TIMEOUT_S = 5
# A pooled connection behind a partition (nothing comes back, nothing is refused) is
# given up by the kernel: idle, after keepalives unanswered for about 20 s; with a
# statement in flight, after 30 s without an acknowledgement (libpq's tcp_user_timeout).
_PROBED = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
           "keepalives_count": 2, "tcp_user_timeout": 30_000}  # fmt: skip
PAGING_CONNECTIONS = 2  # paging's own pool, beside `max_size` (see `open`)
LEASE_TIMEOUT_S = 2.0  # a lease call not answered by then loses the lease
LEASE_EXPIRY_S = 5.0  # a holder that has not renewed for this long has its session ended
STALE_CHECK_S = 3.0  # a standby looks for such a holder at most this often
LEASE_WAIT_MAX_S = 5.0  # the longest a standby's statement waits in the lock's queue
QUIET_POLL_S = 60.0  # the lease connection's statements poll this seldom while they wait


class PostgresStore:
    """`Store` on a PostgreSQL database reached through a small connection pool.

    Args:
        dsn: a `postgresql://` URL; libpq's variables (`PGPASSWORD`, `~/.pgpass`, …)
            fill in what it leaves out.
        max_size: connections in the pool at most.
    """

    def __init__(self, dsn: str, *, max_size: int = 4, timeout_s: float = POOL_TIMEOUT_S) -> None:
        self.name = public_dsn(dsn)
        self._dsn = dsn
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] | None = None
        self._paging: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] | None = None
        self._closed = False
        self._unreachable = False  # a call found no connection and connecting failed
        self._connect_errors: dict[str, int] = {}  # each pool's failed connects, last looked at
        # The paging lease's own connection (also where changes are listened for).
        self._lease_conn: psycopg.AsyncConnection[DictRow] | None = None
        self._lease_token: int | None = None
        self._lease_lock = asyncio.Lock()
        self._stale_checked_at = -math.inf  # loop time a standby last looked for a stale holder
        self._channel = ""  # the lease connection's channel for paging changes
        self._listening = False  # whether the lease connection LISTENs on it
        self._channel = ""

    def __repr__(self) -> str:
        return f"PostgresStore({self.name!r})"

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.name}: store is closed")
        if self._pool is not None:
            return
        pool = self._new_pool("monitor-store", self._max_size)
        try:
            await pool.open(wait=True, timeout=self._timeout_s)
        except psycopg.Error as exc:
            await pool.close()
            # The pool says only that it timed out; one direct attempt says why.
            raise StoreError(f"{self.name}: cannot connect: {await self._why(exc)}") from exc
        self._pool = pool
        try:
            await self._migrate()
        except Exception:
            self._pool = None
            await pool.close()
            raise
        # Paging's own connections (autocommit, like the pool's): a page's
        # claim, its send recorded, an escalation's step and the notice to the leader
        # never queue behind history, readings or incident writes, and a statement
        # alone is one round trip. Connected in the background.
        self._paging = self._new_pool("monitor-paging", PAGING_CONNECTIONS)
        await self._paging.open(wait=False)

    def _new_pool(
        self, name: str, max_size: int
    ) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        """A pool of `max_size` connections at most (one kept), named `name` in
        `pg_stat_activity`. Autocommit: a statement alone (`single`) is one round trip;
        every other call is a transaction block all the same. One the server ended is
        replaced before a call uses it (`_alive`, no round trip). The pool's own retries
        back off without bound (1 s, 2 s, 4 s…), so that after a long outage it would wait
        as long again: given up after `RECONNECT_S`, the next call that finds no
        connection starts a fresh attempt at once."""
        return AsyncConnectionPool(
            self._dsn,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "autocommit": True,
                "application_name": name,
                **_PROBED,
            },
            min_size=1,
            max_size=max_size,
            open=False,
            configure=_configure,
            check=_alive,
            timeout=self._timeout_s,
            reconnect_timeout=RECONNECT_S,
            name=name,
        )

    async def _why(self, exc: psycopg.Error) -> str:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as direct:
            return _reason(direct)
        await conn.close()
        return _reason(exc)

    async def close(self) -> None:
        self._closed = True
        await self._drop_lease_conn()
        if self._paging is not None:
            paging, self._paging = self._paging, None
            await paging.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def schema_version(self) -> int:
        async with self._tx("cannot read the schema version") as cur:
            return await _version(cur)

    async def _migrate(self) -> None:
        while True:
            async with self._tx("cannot migrate the schema") as cur:
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                await cur.execute(
                    "CREATE TABLE IF NOT EXISTS monitor_schema (version integer NOT NULL)"
                )
                version = await _version(cur)
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.name}: schema version {version} is newer than this release"
                        f" knows ({len(MIGRATIONS)}); upgrade the monitor"
                    )
                if version == len(MIGRATIONS):
                    return
                await cur.execute(MIGRATIONS[version].encode())
                await cur.execute("DELETE FROM monitor_schema")
                await cur.execute("INSERT INTO monitor_schema VALUES (%s)", (version + 1,))

    # --- alert state per check -------------------------------------------------------

    async def load_check_states(self) -> dict[str, CheckState]:
        async with self._tx("cannot read check states", single=True) as cur:
            await cur.execute("SELECT * FROM check_states")
            rows = await cur.fetchall()
        return {row["name"]: _rows.check_state(row, _CODEC) for row in rows}

    async def save_check_state(self, check: str, state: CheckState) -> None:
        params = (check, _v(state.state), _opt_ts(state.since), state.ups, state.non_downs,
                  state.bads, state.downs, state.blinds,
                  None if state.seen is None else _v(state.seen), _opt_ts(state.seen_since),
                  state.cause)  # fmt: skip
        async with self._tx("cannot save check state", single=True) as cur:
            await cur.execute(
                "INSERT INTO check_states (name, state, since, ups, non_downs, bads, downs,"
                " blinds, seen, seen_since, cause)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
                " since = excluded.since, ups = excluded.ups, non_downs = excluded.non_downs,"
                " bads = excluded.bads, downs = excluded.downs, blinds = excluded.blinds,"
                " seen = excluded.seen, seen_since = excluded.seen_since, cause = excluded.cause",
                params,
            )

    async def delete_check_states(self, checks: Iterable[str]) -> None:
        names = list(checks)
        async with self._tx("cannot delete check states", single=True) as cur:
            await cur.execute("DELETE FROM check_states WHERE name = ANY(%s)", (names,))

    # --- incidents and their timelines -----------------------------------------------

    async def create_incident(
        self, incident: Incident, entries: Sequence[TimelineEntry]
    ) -> Incident:
        params = _rows.incident_params(incident, _CODEC) | _entry_columns(entries)
        params |= {"channel": _CHANGES_CHANNEL, "notice": f"{CHANGED_INCIDENTS}:"}
        # One statement: the row, its timeline and the notice, one round trip.
        async with self._tx("cannot create incident", key=incident.key, single=True) as cur:
            await cur.execute(_CREATE_INCIDENT, params)
            row = await cur.fetchone()
            assert row is not None  # noqa: S101  INSERT … RETURNING always returns the row
        return replace(incident, id=int(row["id"]))

    async def update_incident(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        params = _rows.incident_params(incident, _CODEC) | _entry_columns(entries)
        params |= {"id": incident.id, "channel": _CHANGES_CHANNEL,
                   "notice": incident_changed(incident.id)}  # fmt: skip
        async with self._tx("cannot update incident", key=incident.key, single=True) as cur:
            await cur.execute(_UPDATE_INCIDENT, params)
            if await cur.fetchone() is None:
                raise StoreError(f"no incident {incident.id} to update")

    async def get_incident(self, incident_id: int) -> Incident | None:
        return await self._one_incident("SELECT * FROM incidents WHERE id = %s", (incident_id,))

    async def open_incident(self, key: str) -> Incident | None:
        return await self._one_incident(
            "SELECT * FROM incidents WHERE key = %s AND status <> 'resolved'", (key,)
        )

    async def latest_incident(self, key: str) -> Incident | None:
        return await self._one_incident(
            "SELECT * FROM incidents WHERE key = %s ORDER BY opened_at DESC, id DESC LIMIT 1",
            (key,),
        )

    async def list_incidents(
        self,
        *,
        statuses: Iterable[IncidentStatus] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        params = {
            "statuses": None if statuses is None else [s.value for s in statuses],
            "severities": None if severities is None else [s.value for s in severities],
            "limit": max(0, limit),
        }
        async with self._tx("cannot list incidents", single=True) as cur:
            await cur.execute(_LIST_INCIDENTS, params)
            rows = await cur.fetchall()
        return [_rows.incident(row, _CODEC) for row in rows]

    async def resolved_incidents(
        self,
        since: datetime,
        *,
        sources: Iterable[IncidentSource] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        params = {
            "since": _ts(since),
            "sources": None if sources is None else [s.value for s in sources],
            "severities": None if severities is None else [s.value for s in severities],
            "limit": max(0, limit),
        }
        async with self._tx("cannot list resolved incidents", single=True) as cur:
            await cur.execute(_RESOLVED_SINCE, params)
            rows = await cur.fetchall()
        return [_rows.incident(row, _CODEC) for row in rows]

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        async with self._tx("cannot read timeline", single=True) as cur:
            await cur.execute(
                "SELECT * FROM timeline WHERE incident_id = %s ORDER BY id", (incident_id,)
            )
            rows = await cur.fetchall()
        return [_rows.entry(row, _CODEC) for row in rows]

    async def repeat_entry(
        self, incident_id: int, events: Sequence[str], at: datetime
    ) -> TimelineEntry | None:
        when = _ts(at)
        async with self._tx("cannot update timeline", single=True) as cur:
            await cur.execute(
                "UPDATE timeline SET count = count + 1, last_at = %s WHERE id = ("
                " SELECT id FROM timeline WHERE incident_id = %s AND event = ANY(%s)"
                " ORDER BY id DESC LIMIT 1) RETURNING *",
                (when, incident_id, list(events)),
            )
            row = await cur.fetchone()
        return None if row is None else _rows.entry(row, _CODEC)

    # --- silences --------------------------------------------------------------------

    async def create_silence(self, silence: Silence) -> Silence:
        params = (_matchers_json(silence.matchers), _ts(silence.starts_at), _ts(silence.ends_at),
                  silence.author, silence.comment, _ts(silence.created_at),
                  _opt_ts(silence.expired_at))  # fmt: skip
        async with self._tx("cannot create silence") as cur:
            await cur.execute(
                "INSERT INTO silences (matchers, starts_at, ends_at, author, comment, created_at,"
                " expired_at) VALUES (%s::jsonb, %s, %s, %s, %s, %s, %s) RETURNING id",
                params,
            )
            row = await cur.fetchone()
            await _changed(cur, CHANGED_SILENCES)
        assert row is not None  # noqa: S101  INSERT … RETURNING always returns the row
        return replace(silence, id=int(row["id"]))

    async def list_silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        async with self._tx("cannot list silences") as cur:
            if active_at is None:
                await cur.execute("SELECT * FROM silences ORDER BY id")
            else:
                await cur.execute(_ACTIVE_SILENCES, {"at": _ts(active_at)})
            rows = await cur.fetchall()
        return [_rows.silence(row, _CODEC) for row in rows]

    async def expire_silence(self, silence_id: int, at: datetime) -> Silence | None:
        when = _ts(at)
        async with self._tx("cannot expire silence") as cur:
            await cur.execute(
                "UPDATE silences SET expired_at = %s WHERE id = %s RETURNING *", (when, silence_id)
            )
            row = await cur.fetchone()
            if row is not None:
                await _changed(cur, CHANGED_SILENCES)
        return None if row is None else _rows.silence(row, _CODEC)

    # --- escalations and the outbox ---------------------------------------------------

    async def load_escalations(self) -> list[EscalationState]:
        async with self._tx("cannot read escalations", single=True) as cur:
            await cur.execute("SELECT * FROM escalations ORDER BY incident_id")
            rows = await cur.fetchall()
        return [_escalation(r) for r in rows]

    async def commit_escalation(
        self, incident_id: int, state: EscalationState | None, items: Sequence[OutboxItem]
    ) -> None:
        rows = _item_rows(items)
        async with self._tx("cannot save escalation") as cur:
            if state is None:
                await cur.execute("DELETE FROM escalations WHERE incident_id = %s", (incident_id,))
            else:
                await _upsert_escalation(cur, incident_id, state)
            await _insert_items(cur, rows)

    async def swap_escalation(
        self,
        incident_id: int,
        expected: EscalationState | None,
        state: EscalationState | None,
        items: Sequence[OutboxItem],
        token: int | None,
        *,
        tell: str | None = None,
    ) -> bool:
        rows = _item_rows(items)
        if expected is None and state is not None and token is None:
            return await self._start_escalation(incident_id, state, rows, tell)
        async with self._tx("cannot save escalation", paging=True) as cur:
            if token is not None:
                await cur.execute(_FENCE, {"token": token})
                if await cur.fetchone() is None:
                    return False
            await cur.execute(
                "SELECT * FROM escalations WHERE incident_id = %s FOR UPDATE", (incident_id,)
            )
            row = await cur.fetchone()
            if (None if row is None else _escalation(row)) != expected:
                return False
            if state is None:
                await cur.execute("DELETE FROM escalations WHERE incident_id = %s", (incident_id,))
            elif expected is None:
                # Two replicas starting one escalation at once: the first insert wins.
                await _insert_escalation(cur, incident_id, state)
                if cur.rowcount == 0:
                    return False
            else:
                await _upsert_escalation(cur, incident_id, state)
            await _insert_items(cur, rows)
            if tell is not None:
                await cur.execute(_NOTIFY_PAGER, (tell,))
        return True

    async def _start_escalation(
        self,
        incident_id: int,
        state: EscalationState,
        rows: list[tuple[Any, ...]],
        tell: str | None,
    ) -> bool:
        """`swap_escalation` from none, unfenced (a replica starting one), in one
        statement: the escalation where none runs, its pages and the notice (`tell`)
        only if it was."""
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 9
        async with self._tx("cannot save escalation", paging=True, single=True) as cur:
            await cur.execute(
                _START_ESCALATION,
                (*_escalation_params(incident_id, state), *columns, tell, tell),
            )
            row = await cur.fetchone()
        return row is not None and bool(row["started"])

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        rows = _item_rows(items)
        async with self._tx("cannot enqueue notifications") as cur:
            await _insert_items(cur, rows)

    async def due_notifications(self, notifier: str, now: datetime, limit: int) -> list[OutboxItem]:
        when = _ts(now)
        async with self._tx("cannot read the outbox", single=True) as cur:
            await cur.execute(
                "SELECT * FROM outbox WHERE notifier = %s AND status = 'pending'"
                " AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT %s",
                (notifier, when, max(0, limit)),
            )
            rows = await cur.fetchall()
        return [_rows.item(r, _CODEC) for r in rows]

    async def next_notification_at(self, notifier: str) -> datetime | None:
        async with self._tx("cannot read the outbox", single=True) as cur:
            await cur.execute(
                "SELECT MIN(next_attempt_at) AS at FROM outbox"
                " WHERE notifier = %s AND status = 'pending'",
                (notifier,),
            )
            row = await cur.fetchone()
        return None if row is None else _opt_utc(row["at"])

    async def pending_notifications(self, notifier: str) -> list[OutboxItem]:
        async with self._tx("cannot read the outbox", single=True) as cur:
            await cur.execute(
                "SELECT * FROM outbox WHERE notifier = %s AND status = 'pending' ORDER BY id",
                (notifier,),
            )
            rows = await cur.fetchall()
        return [_rows.item(r, _CODEC) for r in rows]

    async def settle_notifications(
        self, ids: Sequence[int], status: OutboxStatus, items: Sequence[OutboxItem]
    ) -> None:
        rows = _item_rows(items)
        async with self._tx("cannot settle notifications") as cur:
            await cur.execute(
                "UPDATE outbox SET status = %s WHERE id = ANY(%s) AND status = 'pending'",
                (OutboxStatus(status).value, list(ids)),
            )
            await _insert_items(cur, rows)

    async def update_notification(self, item: OutboxItem) -> None:
        params = (item.attempts, OutboxStatus(item.status).value, _ts(item.next_attempt_at),
                  _opt_ts(item.sent_at), item.last_error, item.id)  # fmt: skip
        async with self._tx("cannot update a notification", paging=True, single=True) as cur:
            await cur.execute(
                "UPDATE outbox SET attempts = %s, status = %s, next_attempt_at = %s,"
                " sent_at = %s, last_error = %s WHERE id = %s",
                params,
            )

    async def claim_notifications(self, ids: Sequence[int], token: int) -> list[int] | None:
        async with self._tx("cannot claim notifications") as cur:
            await cur.execute(_FENCE, {"token": token})
            if await cur.fetchone() is None:
                return None
            await cur.execute(
                "UPDATE outbox SET claim_token = %s, claimed_at = now() WHERE id IN ("
                " SELECT id FROM outbox WHERE id = ANY(%s) AND status = 'pending'"
                " ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING id",
                (token, sorted(set(ids))),
            )
            rows = await cur.fetchall()
        return sorted(int(r["id"]) for r in rows)

    async def claim_due(
        self, notifier: str, now: datetime, token: int, limit: int
    ) -> list[OutboxItem] | None:
        params = {"token": token, "notifier": notifier, "now": _ts(now), "limit": max(0, limit)}
        async with self._tx("cannot claim notifications", paging=True, single=True) as cur:
            await cur.execute(_CLAIM_DUE, params)
            rows = await cur.fetchall()
        if not rows or not rows[0]["held"]:
            return None
        return [_rows.item(r, _CODEC) for r in rows if r["id"] is not None]

    async def outbox_depth(self) -> tuple[int, datetime | None]:
        async with self._tx("cannot read the outbox", single=True) as cur:
            await cur.execute(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox"
                " WHERE status = 'pending'"
            )
            row = await cur.fetchone()
        assert row is not None  # noqa: S101  an aggregate always returns one row
        return int(row["n"]), _opt_utc(row["oldest"])

    async def kv_get(self, key: str) -> str | None:
        async with self._tx("cannot read notifier state", single=True) as cur:
            await cur.execute("SELECT value FROM kv WHERE key = %s", (key,))
            row = await cur.fetchone()
        return None if row is None else str(row["value"])

    async def kv_delete(self, keys: Iterable[str]) -> None:
        names = list(keys)
        async with self._tx("cannot delete notifier state", single=True) as cur:
            await cur.execute("DELETE FROM kv WHERE key = ANY(%s)", (names,))

    async def kv_prefix(self, prefix: str) -> dict[str, str]:
        async with self._tx("cannot read notifier state", single=True) as cur:
            await cur.execute("SELECT key, value FROM kv WHERE starts_with(key, %s)", (prefix,))
            rows = await cur.fetchall()
        return {str(r["key"]): str(r["value"]) for r in rows}

    async def kv_set(self, key: str, value: str) -> None:
        async with self._tx("cannot save notifier state", single=True) as cur:
            await cur.execute(
                "INSERT INTO kv (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- membership ------------------------------------------------------------------

    async def beat_replica(self, replica: ReplicaId) -> list[Replica]:
        """Registers `replica` or renews it, then returns the live set: the replicas the
        database heard from within `replica.ttl_s`, by the database's clock alone."""
        # One statement, one round trip: the row written (RETURNING, as the rest of the
        # statement does not see it) and the others heard from within the ttl.
        async with self._tx("cannot renew replica", single=True) as cur:
            await cur.execute(
                "WITH me AS (INSERT INTO replicas"
                " (id, host, pid, version, started_at, seen_at, config_hash)"
                " VALUES (%(id)s, %(host)s, %(pid)s, %(version)s, now(), now(), %(hash)s)"
                " ON CONFLICT (id) DO UPDATE SET seen_at = now(),"
                " config_hash = excluded.config_hash"
                " RETURNING id, host, pid, version, 0.0::float8 AS age, config_hash)"
                " SELECT * FROM me UNION ALL"
                " SELECT id, host, pid, version, extract(epoch FROM now() - seen_at)::float8,"
                " config_hash FROM replicas WHERE id <> %(id)s"
                " AND seen_at > now() - make_interval(secs => %(ttl)s)",
                {"id": replica.id, "host": replica.host, "pid": replica.pid,
                 "version": replica.version, "hash": replica.config_hash,
                 "ttl": replica.ttl_s},
            )  # fmt: skip
            rows = await cur.fetchall()
        return sorted((_replica(r) for r in rows), key=lambda r: r.id)

    async def beat_and_record(
        self,
        replica: ReplicaId,
        runs: Sequence[tuple[str, float]],
        readings: Sequence[tuple[str, str]],
        gone_after_s: float | None,
    ) -> tuple[list[Replica], list[Replica]]:
        """`beat_replica`, `record_runs`, `save_readings` and, with `gone_after_s`, the
        claim of replicas gone without leaving, as one statement: a replica's beat is one
        round trip a second, not four. Returns the live set and the replicas claimed."""
        # Every part sees the same snapshot: a replica claimed as gone (not seen within
        # the ttl) is not in the live set either. This replica's own row is never
        # claimed by its own beat.
        async with self._tx("cannot renew replica", single=True) as cur:
            await cur.execute(
                _BEAT_AND_RECORD,
                {"id": replica.id, "host": replica.host, "pid": replica.pid,
                 "version": replica.version, "hash": replica.config_hash,
                 "ttl": replica.ttl_s, "claim": gone_after_s, "runs": _ages(runs),
                 "readings": _readings(readings)},
            )  # fmt: skip
            found = await cur.fetchall()
        live = sorted((_replica(r) for r in found if not r["gone"]), key=lambda r: r.id)
        gone = sorted((_replica(r) for r in found if r["gone"]), key=lambda r: r.id)
        return live, gone

    async def leave_replica(self, replica_id: str) -> None:
        """Takes a replica out of the live set at once (a clean stop)."""
        async with self._tx("cannot remove replica", single=True) as cur:
            await cur.execute("DELETE FROM replicas WHERE id = %s", (replica_id,))

    # --- the paging lease and changes told between replicas ----------------------------

    async def acquire_lease(self, holder: str, *, wait_s: float = 0.0) -> int | None:
        """Takes the advisory lock on the lease connection if no session holds it, then
        increments the lease's token. Already held by this store: its token. `wait_s`
        (at most `LEASE_WAIT_MAX_S`): the server queues this session for the lock that
        long, so a standby takes it the moment the holder's session ends, with one round
        trip a `wait_s` rather than a try every few hundred milliseconds."""
        wait_s = max(0.0, min(wait_s, LEASE_WAIT_MAX_S))
        async with self._lease_lock:
            if self._lease_token is not None:
                return self._lease_token
            bound = wait_s + LEASE_TIMEOUT_S
            async with self._lease_call("cannot take the paging lease", bound) as conn:
                wait_ms = round(wait_s * 1000)
                try:
                    if wait_ms > 0:
                        cur = await _bounded(conn, _WAIT_LOCK, (f"{wait_ms}ms",), bound)
                    else:
                        cur = await _bounded(conn, _TRY_LOCK)
                    row = await cur.fetchone()
                except pg_errors.LockNotAvailable:  # held all along: not this time
                    row = None
                if row is None or not row["got"]:
                    # Held by a session whose holder stopped renewing (its connection half
                    # open, which the server has not noticed): ended, taken at the next try.
                    # Looked for every `STALE_CHECK_S`, not at every try, so that a
                    # standby's try is one round trip.
                    now = asyncio.get_running_loop().time()
                    if now - self._stale_checked_at >= STALE_CHECK_S:
                        self._stale_checked_at = now
                        await _bounded(
                            conn,
                            "SELECT pg_terminate_backend(backend_pid, 1000) FROM leases"
                            " WHERE name = %s"
                            " AND renewed_at < now() - make_interval(secs => %s)",
                            (_LEASE, LEASE_EXPIRY_S),
                        )
                    return None
                if wait_ms > 0:  # what follows waits for row locks as long as it must
                    await _bounded(conn, b"SELECT set_config('lock_timeout', '0', false)")
                cur = await _bounded(
                    conn,
                    "INSERT INTO leases (name, token, holder, backend_pid, acquired_at,"
                    " renewed_at) VALUES (%s, 1, %s, pg_backend_pid(), now(), now())"
                    " ON CONFLICT (name) DO UPDATE SET token = leases.token + 1,"
                    " holder = excluded.holder, backend_pid = excluded.backend_pid,"
                    " acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at"
                    " RETURNING token",
                    (_LEASE, holder),
                )
                row = await cur.fetchone()
                assert row is not None  # noqa: S101  INSERT … RETURNING always returns the row
                self._lease_token = int(row["token"])
                # Listening from now on, before the caller reads paging state: a change
                # told after that read is heard.
                await self._listen_lease(conn)
                return self._lease_token

    async def renew_lease(self) -> bool:
        """One round trip on the lease connection: the lease still names this session with
        this store's token, and says when it was renewed (standbys end a holder silent
        for `LEASE_EXPIRY_S`). A connection that fails or does not answer in time loses it."""
        async with self._lease_lock:
            if self._lease_token is None or self._lease_conn is None:
                return False
            try:
                async with self._lease_call("cannot renew the paging lease") as conn:
                    cur = await _bounded(
                        conn,
                        "UPDATE leases SET renewed_at = now()"
                        " WHERE name = %s AND backend_pid = pg_backend_pid() RETURNING token",
                        (_LEASE,),
                    )
                    row = await cur.fetchone()
            except StoreError:
                return False
            if row is None or int(row["token"]) != self._lease_token:
                await self._drop_lease_conn()
                return False
            return True

    async def release_lease(self) -> None:
        async with self._lease_lock:
            if self._lease_token is None:
                return
            self._lease_token = None
            with suppress(StoreError):
                async with self._lease_call("cannot release the paging lease") as conn:
                    await _bounded(conn, _UNLOCK)

    async def database_now(self) -> datetime | None:
        async with self._tx("cannot read the time", single=True) as cur:
            await cur.execute("SELECT clock_timestamp() AS t")
            row = await cur.fetchone()
        assert row is not None  # noqa: S101  a SELECT of one value returns one row
        return _utc(row["t"])

    async def notify_change(self, sender: str) -> None:
        async with self._tx("cannot tell the other replicas", paging=True, single=True) as cur:
            await cur.execute(_NOTIFY_PAGER, (sender,))

    async def wait_changes(self, timeout_s: float, listener: str) -> bool:
        """LISTENs on the lease connection; notifications of `listener` itself are not a
        change."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with (
            self._lease_lock,
            self._lease_call("cannot listen for changes", timeout_s + LEASE_TIMEOUT_S) as conn,
        ):
            await self._listen_lease(conn)
            heard: list[str] = []
            while True:
                await _notices(conn, heard.append)
                if any(payload != listener for payload in heard):
                    return True
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 or not await _readable(conn.pgconn.socket, left):
                    return False

    @asynccontextmanager
    async def _lease_call(
        self, what: str, timeout_s: float = LEASE_TIMEOUT_S
    ) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        """The lease connection (opened as needed) for calls that take at most
        `timeout_s`. Any failure drops it, and the lock with it: a lease is never half held."""
        if self._closed:
            raise StoreError(f"{self.name}: store is closed")
        try:
            if self._lease_conn is None or self._lease_conn.closed:
                async with asyncio.timeout(CONNECT_TIMEOUT_S + LEASE_TIMEOUT_S):
                    self._lease_conn = await self._connect_lease()
            async with asyncio.timeout(timeout_s):
                yield self._lease_conn
        except (psycopg.Error, TimeoutError) as exc:
            await self._drop_lease_conn()
            reason = _reason(exc) if isinstance(exc, psycopg.Error) else "timed out"
            raise StoreError(f"{self.name}: {what}: {reason}") from exc

    async def _listen_lease(self, conn: psycopg.AsyncConnection[DictRow]) -> None:
        """LISTENs on the lease connection for paging changes, once per connection. Only
        a leader (or a caller of `wait_changes`) does: a standby's connection would keep
        every notification it never reads."""
        if not self._listening:
            await _bounded(conn, sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._listening = True

    async def _connect_lease(self) -> psycopg.AsyncConnection[DictRow]:
        conn = await _QuietConnection.connect(
            self._dsn, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S,
            keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
        )  # fmt: skip
        try:
            await conn.execute("SET TIME ZONE 'UTC'")
            for setting in _LEASE_SETTINGS:
                await conn.execute(setting.encode())
            cur = await conn.execute("SELECT 'monitor_pager_' || md5(current_schema()) AS ch")
            row = await cur.fetchone()
            assert row is not None  # noqa: S101  a SELECT of one value returns one row
            self._channel = str(row["ch"])
            self._listening = False  # LISTEN once leading (`_listen_lease`), not before
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _drop_lease_conn(self) -> None:
        conn, self._lease_conn = self._lease_conn, None
        self._lease_token = None
        if conn is not None:
            with suppress(Exception):
                await conn.close()

    async def record_runs(self, replica_id: str, runs: Sequence[tuple[str, float]]) -> None:
        if not runs:
            return
        async with self._tx("cannot record runs", single=True) as cur:
            await cur.execute(_RECORD_RUNS, {"id": replica_id, "runs": _ages(runs)})

    async def last_runs(self, checks: Sequence[str]) -> dict[str, float]:
        async with self._tx("cannot read last runs", single=True) as cur:
            await cur.execute(
                "SELECT check_name, extract(epoch FROM now() - ran_at) AS age"
                " FROM check_runs WHERE check_name = ANY(%s)",
                (list(checks),),
            )
            rows = await cur.fetchall()
        return {str(r["check_name"]): float(r["age"]) for r in rows}

    async def last_runners(self, checks: Sequence[str]) -> dict[str, tuple[float, str]]:
        async with self._tx("cannot read last runs", single=True) as cur:
            await cur.execute(
                "SELECT check_name, replica, extract(epoch FROM now() - ran_at) AS age"
                " FROM check_runs WHERE check_name = ANY(%s)",
                (list(checks),),
            )
            rows = await cur.fetchall()
        return {str(r["check_name"]): (float(r["age"]), str(r["replica"])) for r in rows}

    # --- confirmation from another replica ------------------------------------------

    async def request_confirmation(
        self, check: str, definition: str, requested_by: str, needed: int, within_s: float
    ) -> int:
        async with self._tx("cannot request a confirmation") as cur:
            await cur.execute("SELECT nextval('confirmation_requests') AS request")
            row = await cur.fetchone()
            assert row is not None  # noqa: S101  nextval always returns a row
            request = int(row["request"])
            await cur.execute(
                "INSERT INTO confirmations (request, check_name, definition, requested_by,"
                " requested_at, open_until) SELECT %s, %s, %s, %s, now(),"
                " now() + make_interval(secs => %s) FROM generate_series(1, %s)",
                (request, check, definition, requested_by, within_s, max(1, needed)),
            )
            await cur.execute("SELECT pg_notify(%s, %s)", (_CONFIRM_CHANNEL, f"request:{request}"))
        return request

    async def claim_confirmation(self, replica: str) -> Slot | None:
        async with self._tx("cannot claim a confirmation", single=True) as cur:
            await cur.execute(_CLAIM_CONFIRMATION, {"me": replica})
            row = await cur.fetchone()
        if row is None:
            return None
        return Slot(int(row["id"]), int(row["request"]), str(row["check_name"]),
                    str(row["definition"]), str(row["requested_by"]))  # fmt: skip

    async def answer_confirmation(
        self, slot: int, replica: str, host: str, seen: Seen, failure: str | None, message: str
    ) -> None:
        async with self._tx("cannot answer a confirmation") as cur:
            await cur.execute(
                "UPDATE confirmations SET seen = %s, answered_host = %s, failure = %s,"
                " message = %s, answered_at = now() WHERE id = %s AND claimed_by = %s"
                " AND seen IS NULL RETURNING request",
                (Seen(seen).value, host, failure, message, slot, replica),
            )
            row = await cur.fetchone()
            if row is not None:
                await cur.execute(
                    "SELECT pg_notify(%s, %s)", (_CONFIRM_CHANNEL, f"answer:{row['request']}")
                )

    async def decline_confirmation(self, slot: int, replica: str) -> None:
        async with self._tx("cannot decline a confirmation") as cur:
            await cur.execute(
                "UPDATE confirmations SET claimed_by = NULL, claimed_at = NULL,"
                " declined = array_append(declined, %s) WHERE id = %s AND claimed_by = %s"
                " AND seen IS NULL RETURNING request",
                (replica, slot, replica),
            )
            row = await cur.fetchone()
            if row is not None:  # another replica may take it
                await cur.execute(
                    "SELECT pg_notify(%s, %s)", (_CONFIRM_CHANNEL, f"request:{row['request']}")
                )

    async def confirmation_answers(self, request: int) -> list[Answer]:
        async with self._tx("cannot read confirmations", single=True) as cur:
            await cur.execute(
                "SELECT claimed_by, answered_host, seen, failure, message, answered_at"
                " FROM confirmations WHERE request = %s AND seen IS NOT NULL"
                " ORDER BY answered_at, id",
                (request,),
            )
            rows = await cur.fetchall()
        return [
            Answer(str(r["claimed_by"]), str(r["answered_host"] or ""), Seen(r["seen"]),
                   r["failure"], str(r["message"] or ""), _utc(r["answered_at"]))
            for r in rows
        ]  # fmt: skip

    async def close_confirmation(self, request: int) -> None:
        async with self._tx("cannot close a confirmation", single=True) as cur:
            await cur.execute(
                "UPDATE confirmations SET open_until = now() WHERE request = %s"
                " AND open_until > now()",
                (request,),
            )

    async def prune_confirmations(self, older_than_s: float) -> int:
        async with self._tx("cannot prune confirmations", single=True) as cur:
            await cur.execute(
                "DELETE FROM confirmations WHERE requested_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
            return max(0, cur.rowcount)

    async def listen_confirmations(self, notice: Callable[[str], None]) -> None:
        """Holds one connection of its own (outside the pool) listening on the channel;
        `LISTENING` once it listens."""
        await self._listen(_CONFIRM_CHANNEL, notice, ready=LISTENING)

    # --- what every replica serves ---------------------------------------------------

    async def save_readings(self, replica_id: str, readings: Sequence[tuple[str, str]]) -> None:
        if not readings:
            return
        async with self._tx("cannot save readings", single=True) as cur:
            await cur.execute(_SAVE_READINGS, {"id": replica_id, "readings": _readings(readings)})

    async def load_readings(
        self, since: float | None, *, other_than: str | None = None
    ) -> tuple[float, dict[str, str]]:
        # A writer's transaction started before `since` may commit after it: the rows of
        # the overlap before it are read again.
        after = None if since is None else since - _READINGS_OVERLAP_S
        async with self._tx("cannot read readings") as cur:
            await cur.execute("SELECT extract(epoch FROM now()) AS now")
            row = await cur.fetchone()
            assert row is not None  # noqa: S101  a SELECT without FROM returns one row
            await cur.execute(
                "SELECT check_name, reading FROM check_readings"
                " WHERE (%(after)s::float8 IS NULL OR written_at > to_timestamp(%(after)s))"
                " AND (%(other)s::text IS NULL OR replica <> %(other)s)",
                {"after": after, "other": other_than},
            )
            rows = await cur.fetchall()
        return float(row["now"]), {str(r["check_name"]): str(r["reading"]) for r in rows}

    async def listen_changes(self, notice: Callable[[str], None]) -> None:
        """Holds one connection of its own (outside the pool) listening on the channel."""
        await self._listen(_CHANGES_CHANNEL, notice)

    async def _listen(
        self, channel: str, notice: Callable[[str], None], *, ready: str | None = None
    ) -> None:
        if self._pool is None:
            raise StoreError(f"{self.name}: store is {'closed' if self._closed else 'not open'}")
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: cannot listen: {_reason(exc)}") from exc
        try:
            await conn.execute(f"LISTEN {channel}")
            if ready is not None:
                notice(ready)
            while True:
                await _notices(conn, notice)
                await _readable(conn.pgconn.socket, None)
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: listening stopped: {_reason(exc)}") from exc
        finally:
            await conn.close()

    # --- run history -----------------------------------------------------------------

    async def add_history(self, buckets: Sequence[HistoryBucket]) -> None:
        rows = with_hours(buckets)
        if not rows:
            return
        # One JSON array of rows, encoded by the json module's C code: a row per
        # parameter set (`executemany`) is adapted value by value in Python, four times
        # what SQLite costs for the same minute of 1,000 checks.
        doc = json.dumps(
            [[b.check, b.resolution, b.start, b.up, b.degraded, b.down, b.blind,
              _finite(b.sum_ms), _finite(b.max_ms), b.latency] for b in rows],
            separators=(",", ":"),
        )  # fmt: skip
        async with self._tx("cannot save history", single=True) as cur:
            await cur.execute(_ADD_HISTORY, (doc,))

    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]:
        return (await self.read_history_of([check], resolution, since, until)).get(check, [])

    async def count_runs(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> RunCounts:
        async with self._tx("cannot read history", single=True) as cur:
            await cur.execute(
                "SELECT COALESCE(SUM(up), 0) AS up, COALESCE(SUM(degraded), 0) AS degraded,"
                " COALESCE(SUM(down), 0) AS down, COALESCE(SUM(blind), 0) AS blind"
                " FROM history WHERE check_name = ANY(%s) AND resolution = %s"
                " AND start >= %s AND start < %s",
                (list(checks), resolution, since, until),
            )
            row = await cur.fetchone()
        assert row is not None  # noqa: S101  an aggregate always returns one row
        return RunCounts(int(row["up"]), int(row["degraded"]), int(row["down"]), int(row["blind"]))

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]:
        return (await self.read_history_totals_of([check], size, since, until)).get(check, [])

    async def read_history_of(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        async with self._tx("cannot read history", single=True) as cur:
            await cur.execute(
                "SELECT * FROM history WHERE check_name = ANY(%s) AND resolution = %s"
                " AND start >= %s AND start < %s ORDER BY check_name, start",
                (list(checks), resolution, since, until),
            )
            rows = await cur.fetchall()
        return _by_check(_bucket(r) for r in rows)

    async def read_history_totals_of(
        self, checks: Sequence[str], size: int, since: int, until: int
    ) -> dict[str, list[HistoryBucket]]:
        async with self._tx("cannot read history", single=True) as cur:
            await cur.execute(_HISTORY_TOTALS_OF, (size, size, list(checks), HOUR, since, until))
            rows = await cur.fetchall()
        return _by_check(_bucket(r) for r in rows)

    async def prune_history(self, now: int) -> None:
        async with self._tx("cannot prune history") as cur:
            for resolution, keep in ((MINUTE, MINUTE_RETENTION_S), (HOUR, HOUR_RETENTION_S)):
                await cur.execute(
                    "DELETE FROM history WHERE resolution = %s AND start < %s",
                    (resolution, now - keep),
                )

    async def delete_history(self, checks: Iterable[str]) -> None:
        async with self._tx("cannot delete history", single=True) as cur:
            await cur.execute("DELETE FROM history WHERE check_name = ANY(%s)", (list(checks),))

    # --- plumbing --------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(
        self, what: str, *, key: str | None = None, paging: bool = False, single: bool = False
    ) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
        """One transaction on a pooled connection: committed when the body returns, rolled
        back when it raises. psycopg's errors become `StoreError`s naming the database (no
        password) and the operation; a broken connection is discarded by the pool.
        `paging`: on paging's own pool; `single`: the body's one statement is its
        own transaction (no BEGIN, no COMMIT)."""
        pool = self._pool
        if pool is None:
            state = "closed" if self._closed else "not open"
            raise StoreError(f"{self.name}: store is {state}")
        pool = self._paging if paging and self._paging is not None else pool
        try:
            conn = await self._getconn(pool)
            try:
                async with conn:  # as the pool's own `connection()`: ended, then returned
                    tx: AbstractAsyncContextManager[object] = (
                        nullcontext() if single else conn.transaction()
                    )
                    async with tx, conn.cursor() as cur:
                        yield cur
            finally:
                await pool.putconn(conn)
        except PoolTimeout as exc:
            self._no_connection(pool)
            raise StoreError(f"{self.name}: {what}: {_reason(exc)}") from exc
        except pg_errors.UniqueViolation as exc:
            if key is not None and exc.diag.constraint_name == "incidents_one_open_per_key":
                msg = f"incident key {key!r} already has an incident that is not resolved"
                raise StoreError(msg) from exc
            raise StoreError(f"{self.name}: {what}: {_reason(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: {what}: {_reason(exc)}") from exc
        else:
            if self._unreachable:
                self._unreachable = False
                log.info("store_reachable", store=self.name)

    async def _getconn(
        self, pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]
    ) -> psycopg.AsyncConnection[DictRow]:
        """A connection from `pool`: waited for `UNREACHABLE_WAIT_S` when the database is
        known unreachable, else up to the pool's timeout, in slices of that length. A
        call that started waiting while the database went away stops at the end of a
        slice once connecting has failed meanwhile (or another call found it
        unreachable), instead of holding its check's run for the full timeout."""
        if self._unreachable:
            return await pool.getconn(timeout=UNREACHABLE_WAIT_S)
        errors = pool.get_stats().get("connections_errors", 0)
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                return await pool.getconn(timeout=max(min(UNREACHABLE_WAIT_S, left), 0.001))
            except PoolTimeout:
                failed = pool.get_stats().get("connections_errors", 0) > errors
                if left <= UNREACHABLE_WAIT_S or failed or self._unreachable:
                    raise

    @property
    def unreachable(self) -> bool:
        """Whether the last call found no connection and connecting failed (calls then
        wait `UNREACHABLE_WAIT_S` for one, until a call succeeds)."""
        return self._unreachable

    def _no_connection(self, pool: AsyncConnectionPool[Any]) -> None:
        """A call found no connection in time. The database is unreachable when the pool
        failed to connect meanwhile or had room to grow (it was not merely busy)."""
        stats = pool.get_stats()
        errors = stats.get("connections_errors", 0)
        failed = errors > self._connect_errors.get(pool.name, 0)
        self._connect_errors[pool.name] = errors
        if not self._unreachable and (failed or stats["pool_size"] < stats["pool_max"]):
            self._unreachable = True
            log.warning(
                "store_unreachable", store=self.name, wait_s=UNREACHABLE_WAIT_S,
                reason="no connection to the database: calls wait briefly until one succeeds",
            )  # fmt: skip

    async def _one_incident(self, sql: str, params: tuple[object, ...]) -> Incident | None:
        async with self._tx("cannot read incident", single=True) as cur:
            await cur.execute(sql.encode(), params)
            row = await cur.fetchone()
        return None if row is None else _rows.incident(row, _CODEC)


async def _bounded(
    conn: psycopg.AsyncConnection[DictRow],
    query: str | bytes | sql.Composed,
    params: Any = None,
    timeout_s: float = LEASE_TIMEOUT_S,
) -> psycopg.AsyncCursor[DictRow]:
    """One statement on the lease connection, answered within `timeout_s` or the
    connection is closed on the spot: psycopg's own cancellation would send a cancel
    request into the same partition and wait seconds more for it."""
    task = asyncio.ensure_future(conn.execute(query, params))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    finally:
        if not task.done():
            conn.pgconn.finish()  # no query left running: cancelling it returns at once
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if not done:
        raise TimeoutError
    return task.result()


_RV = TypeVar("_RV")


class _QuietConnection(psycopg.AsyncConnection[DictRow]):
    """The lease connection: a standby's statement waits seconds for the lock,
    and psycopg wakes every 100 ms while a statement waits (to poll for an interrupt,
    which a task's cancellation makes needless): ten wake-ups a second. This one waits on
    the socket alone."""

    async def wait(
        self,
        gen: PQGen[_RV],
        interval: float = QUIET_POLL_S,
        timeout: float | None = None,  # noqa: ASYNC109  psycopg's signature, overridden
    ) -> _RV:
        return await super().wait(gen, interval=interval, timeout=timeout)


async def _notices(conn: psycopg.AsyncConnection[Any], notice: Callable[[str], None]) -> None:
    """Hands `notice` the payload of each notification that has arrived on `conn`
    (psycopg keeps those that came with a query's answer), without waiting for more.

    Waiting is `_readable`'s, not psycopg's `notifies()`: that one wakes every 100 ms to
    poll, ten wake-ups a second for each connection that listens, which made listening
    the largest fixed cost of a replica."""
    async with aclosing(conn.notifies(timeout=0.0)) as notes:
        async for note in notes:
            notice(note.payload)


async def _readable(fd: int, timeout_s: float | None) -> bool:
    """Whether `fd` has something to read within `timeout_s` (None: however long it
    takes): a notification, or the end of the connection, which the read that follows
    reports. One reader and, with a timeout, one timer: no polling."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        if timeout_s is None:
            await ready
        else:
            await asyncio.wait_for(ready, timeout_s)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True


def _replica(r: DictRow) -> Replica:
    return Replica(
        str(r["id"]), str(r["host"]), int(r["pid"]), str(r["version"]), float(r["age"]),
        str(r["config_hash"]),
    )  # fmt: skip


# A replica's runs, one JSON object of check → seconds ago (`_ages`): a text[] parameter
# is quoted element by element in Python.
_RECORD_RUNS = (
    b"INSERT INTO check_runs (check_name, ran_at, replica)"
    b" SELECT key, now() - make_interval(secs => value::float8), %(id)s"
    b" FROM json_each_text(%(runs)s::json)"
    b" ON CONFLICT (check_name) DO UPDATE SET ran_at = excluded.ran_at,"
    b" replica = excluded.replica WHERE check_runs.ran_at < excluded.ran_at"
)
# A replica's check readings, one JSON object of check → reading (`_readings`).
_SAVE_READINGS = (
    b"INSERT INTO check_readings (check_name, replica, reading, written_at)"
    b" SELECT key, %(id)s, value, now() FROM json_each_text(%(readings)s::json)"
    b" ON CONFLICT (check_name) DO UPDATE SET replica = excluded.replica,"
    b" reading = excluded.reading, written_at = excluded.written_at"
)

# `beat_and_record`: the beat (`beat_replica`'s statement), the claim of gone replicas,
# the runs and the readings, one statement; every part sees the same snapshot.
_BEAT_AND_RECORD = (
    b"WITH me AS (INSERT INTO replicas"
    b" (id, host, pid, version, started_at, seen_at, config_hash)"
    b" VALUES (%(id)s, %(host)s, %(pid)s, %(version)s, now(), now(), %(hash)s)"
    b" ON CONFLICT (id) DO UPDATE SET seen_at = now(),"
    b" config_hash = excluded.config_hash"
    b" RETURNING id, host, pid, version, 0.0::float8 AS age, config_hash),"
    b" gone AS (DELETE FROM replicas WHERE %(claim)s::float8 IS NOT NULL"
    b" AND id <> %(id)s AND seen_at <= now() - make_interval(secs => %(claim)s)"
    b" RETURNING id, host, pid, version, extract(epoch FROM now() - seen_at)::float8"
    b" AS age, config_hash),"
    b" ran AS (" + _RECORD_RUNS + b"), readings AS (" + _SAVE_READINGS + b")"
    b" SELECT false AS gone, * FROM me UNION ALL"
    b" SELECT false, id, host, pid, version,"
    b" extract(epoch FROM now() - seen_at)::float8, config_hash FROM replicas"
    b" WHERE id <> %(id)s AND seen_at > now() - make_interval(secs => %(ttl)s)"
    b" UNION ALL SELECT true, * FROM gone"
)


def _ages(runs: Sequence[tuple[str, float]]) -> str:
    return json.dumps({c: max(0.0, a) for c, a in runs}, separators=(",", ":"))


def _readings(readings: Sequence[tuple[str, str]]) -> str:
    """Each reading (a JSON text already) set into one object as it is: encoding the
    texts as JSON strings would escape every quote in them again. The json type keeps
    each value's text, so `json_each_text` gives it back unchanged. One row per check,
    the last reading of a check winning."""
    last = dict(readings)
    return "{" + ",".join(f"{json.dumps(c)}:{text}" for c, text in last.items()) + "}"


def _finite(value: float) -> float:
    """A float JSON can carry (PostgreSQL's json has no NaN or Infinity)."""
    return value if math.isfinite(value) else 0.0


async def _alive(conn: psycopg.AsyncConnection[DictRow]) -> None:
    """A pooled connection taken for a call: one the server has ended (a restart, an
    administrator, an idle timeout) is discarded, seen by reading what the server sent,
    without a round trip. A silent partition shows in the call itself (keepalives, user
    timeout)."""
    if conn.closed or conn.broken or conn.pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    # Nothing is due on an idle connection: anything to read is the server's farewell
    # (its termination notice, the end of the stream). Then a new connection is made.
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await conn.close()  # closed, the pool replaces it rather than keeping it
        raise psycopg.OperationalError("the server ended the connection")


async def _configure(conn: psycopg.AsyncConnection[DictRow]) -> None:
    # Times come back in UTC whatever the server's or the role's default zone.
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


async def _version(cur: psycopg.AsyncCursor[DictRow]) -> int:
    await cur.execute("SELECT to_regclass('monitor_schema') IS NOT NULL AS present")
    row = await cur.fetchone()
    if row is None or not row["present"]:
        return 0
    await cur.execute("SELECT max(version) AS v FROM monitor_schema")
    row = await cur.fetchone()
    return 0 if row is None or row["v"] is None else int(row["v"])


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's message on one line; it never holds the password (libpq
    names host, port and user only), and the daemon's redaction masks it anyway."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- rows <-> values ---------------------------------------------------------------------

# The timeline's entries come as one array per column (`_entry_columns`), inserted in
# their order; the notice goes out when the statement commits.
_ENTRIES = b"""
    INSERT INTO timeline (incident_id, at, event, actor, text, data)
    SELECT done.id, a, e, w, t, d::jsonb
    FROM done, unnest(%(e_at)s::timestamptz[], %(e_event)s::text[], %(e_actor)s::text[],
                      %(e_text)s::text[], %(e_data)s::text[])
               WITH ORDINALITY AS u (a, e, w, t, d, i)
    ORDER BY i
"""

_CREATE_INCIDENT = (
    b"""
WITH done AS (
    INSERT INTO incidents (
        key, title, status, severity, opened_at, updated_at, check_name, source,
        acknowledged_at, resolved_at, assignee, rule, failure, message, suppressed,
        report_url, auto_resolve, reopened, drill, last_good, public_note
    ) VALUES (
        %(key)s, %(title)s, %(status)s, %(severity)s, %(opened_at)s, %(updated_at)s,
        %(check_name)s, %(source)s, %(acknowledged_at)s, %(resolved_at)s, %(assignee)s,
        %(rule)s, %(failure)s, %(message)s, %(suppressed)s, %(report_url)s, %(auto_resolve)s,
        %(reopened)s, %(drill)s, %(last_good)s::jsonb, %(public_note)s
    ) RETURNING id
), entries AS ("""
    + _ENTRIES
    + b""")
SELECT id, pg_notify(%(channel)s, %(notice)s || id) FROM done
"""
)

_UPDATE_INCIDENT = (
    b"""
WITH done AS (
    UPDATE incidents SET
        key = %(key)s, title = %(title)s, status = %(status)s, severity = %(severity)s,
        opened_at = %(opened_at)s, updated_at = %(updated_at)s, check_name = %(check_name)s,
        source = %(source)s, acknowledged_at = %(acknowledged_at)s,
        resolved_at = %(resolved_at)s, assignee = %(assignee)s, rule = %(rule)s,
        failure = %(failure)s, message = %(message)s, suppressed = %(suppressed)s,
        report_url = %(report_url)s, auto_resolve = %(auto_resolve)s, reopened = %(reopened)s,
        drill = %(drill)s, last_good = %(last_good)s::jsonb, public_note = %(public_note)s
    WHERE id = %(id)s
    RETURNING id
), entries AS ("""
    + _ENTRIES
    + b""")
SELECT id, pg_notify(%(channel)s, %(notice)s) FROM done
"""
)

_LIST_INCIDENTS = b"""
SELECT * FROM incidents
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(severities)s::text[] IS NULL OR severity = ANY(%(severities)s::text[]))
ORDER BY opened_at DESC, id DESC
LIMIT %(limit)s
"""

_RESOLVED_SINCE = b"""
SELECT * FROM incidents
WHERE status = 'resolved' AND resolved_at >= %(since)s
  AND (%(sources)s::text[] IS NULL OR source = ANY(%(sources)s::text[]))
  AND (%(severities)s::text[] IS NULL OR severity = ANY(%(severities)s::text[]))
ORDER BY resolved_at DESC, id DESC
LIMIT %(limit)s
"""

_ACTIVE_SILENCES = b"""
SELECT * FROM silences
WHERE starts_at <= %(at)s AND ends_at > %(at)s AND (expired_at IS NULL OR expired_at > %(at)s)
ORDER BY id
"""


def _v(value: object) -> object:
    """An enum's value; strings and the rest as they are."""
    return value.value if isinstance(value, Enum) else value


def _ts(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store keeps aware UTC times only")
    return at.astimezone(UTC)


def _opt_ts(at: datetime | None) -> datetime | None:
    return None if at is None else _ts(at)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _opt_utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


def _entry_columns(entries: Sequence[TimelineEntry]) -> dict[str, list[Any]]:
    """The entries as one list per column (`_ENTRIES`), built before the statement: bad
    data (a naive time, a value that is not JSON) raises as itself, nothing written."""
    rows = _entry_rows(entries)
    names = ("e_at", "e_event", "e_actor", "e_text", "e_data")
    if not rows:
        return {n: [] for n in names}
    return {n: list(c) for n, c in zip(names, zip(*rows, strict=True), strict=True)}


def _entry_rows(entries: Sequence[TimelineEntry]) -> list[tuple[Any, ...]]:
    """Built before the transaction starts: bad data (a naive time, a value that is not
    JSON) raises as itself and nothing is written."""
    return [(_ts(e.at), e.event, e.actor, e.text, _data_json(e.data)) for e in entries]


def _escalation(r: DictRow) -> EscalationState:
    return EscalationState(int(r["incident_id"]), r["policy"], r["step"], r["pass_no"],
                           _utc(r["next_at"]), EscalationMode(r["mode"]), int(r["epoch"]))  # fmt: skip


_ESCALATION_VALUES = (
    "INSERT INTO escalations (incident_id, policy, step, pass_no, next_at, mode, epoch)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (incident_id)"
)


def _escalation_params(incident_id: int, state: EscalationState) -> tuple[Any, ...]:
    return (incident_id, state.policy, state.step, state.pass_no, _ts(state.next_at),
            EscalationMode(state.mode).value, state.epoch)  # fmt: skip


async def _upsert_escalation(
    cur: psycopg.AsyncCursor[DictRow], incident_id: int, state: EscalationState
) -> None:
    await cur.execute(
        _ESCALATION_VALUES + " DO UPDATE SET policy = excluded.policy, step = excluded.step,"
        " pass_no = excluded.pass_no, next_at = excluded.next_at,"
        " mode = excluded.mode, epoch = excluded.epoch",
        _escalation_params(incident_id, state),
    )


async def _insert_escalation(
    cur: psycopg.AsyncCursor[DictRow], incident_id: int, state: EscalationState
) -> None:
    await cur.execute(_ESCALATION_VALUES + " DO NOTHING", _escalation_params(incident_id, state))


# An escalation started where none runs, and its first pages with it (`_item_rows` as
# columns), in one statement: the pages only if the escalation was inserted.
_START_ESCALATION = """
WITH started AS (
    INSERT INTO escalations (incident_id, policy, step, pass_no, next_at, mode, epoch)
    VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (incident_id) DO NOTHING
    RETURNING incident_id
), paged AS (
    INSERT INTO outbox (key, notifier, payload, created_at, next_attempt_at, attempts, status,
                        sent_at, last_error)
    SELECT k, n, p, c, a, t, st, s, e
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[],
                %s::integer[], %s::text[], %s::timestamptz[], %s::text[])
         WITH ORDINALITY AS u (k, n, p, c, a, t, st, s, e, i)
    WHERE EXISTS (SELECT 1 FROM started)
    ORDER BY i
    ON CONFLICT (key) DO NOTHING
), told AS (
    SELECT pg_notify('monitor_pager_' || md5(current_schema()), %s) FROM started
    WHERE %s::text IS NOT NULL
)
SELECT count(*) AS started, (SELECT count(*) FROM told) AS told FROM started
"""

# Paging state changed (`notify_change`): the payload names the sender, who ignores it.
_NOTIFY_PAGER = "SELECT pg_notify('monitor_pager_' || md5(current_schema()), %s)"


def _item_rows(items: Sequence[OutboxItem]) -> list[tuple[Any, ...]]:
    return [(i.key, i.notifier, i.payload, _ts(i.created_at), _ts(i.next_attempt_at), i.attempts,
             OutboxStatus(i.status).value, _opt_ts(i.sent_at), i.last_error) for i in items]  # fmt: skip


async def _insert_items(cur: psycopg.AsyncCursor[DictRow], rows: list[tuple[Any, ...]]) -> None:
    # ON CONFLICT DO NOTHING on the unique key: the idempotency of pages across crashes.
    if rows:
        await cur.executemany(
            "INSERT INTO outbox (key, notifier, payload, created_at, next_attempt_at,"
            " attempts, status, sent_at, last_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO NOTHING",
            rows,
        )


# Adding is the merge: counts sum, the histogram sums bucket by bucket, max is the max.
_ADD_HISTORY = """
INSERT INTO history AS h
SELECT r->>0, (r->>1)::integer, (r->>2)::bigint, (r->>3)::integer, (r->>4)::integer,
       (r->>5)::integer, (r->>6)::integer, (r->>7)::float8, (r->>8)::float8,
       ARRAY(SELECT x::integer FROM json_array_elements_text(r->9) WITH ORDINALITY AS e (x, i)
             ORDER BY i)
FROM json_array_elements(%s::json) AS r
ON CONFLICT (check_name, resolution, start) DO UPDATE SET
    up = h.up + excluded.up, degraded = h.degraded + excluded.degraded,
    down = h.down + excluded.down, blind = h.blind + excluded.blind,
    sum_ms = h.sum_ms + excluded.sum_ms, max_ms = GREATEST(h.max_ms, excluded.max_ms),
    latency = ARRAY(
        SELECT coalesce(a, 0) + coalesce(b, 0)
        FROM unnest(h.latency, excluded.latency) WITH ORDINALITY AS t(a, b, i) ORDER BY i
    )
"""


# Hour rows added up per period: the same columns as a row of `history`.
_HISTORY_TOTALS_OF = """
SELECT check_name, %s AS resolution, period AS start, sum(up) AS up,
       sum(degraded) AS degraded, sum(down) AS down, sum(blind) AS blind,
       sum(sum_ms) AS sum_ms, max(max_ms) AS max_ms,
       ARRAY[sum(latency[1]), sum(latency[2]), sum(latency[3]), sum(latency[4]),
             sum(latency[5]), sum(latency[6]), sum(latency[7]), sum(latency[8])] AS latency
FROM (SELECT *, start - start %% %s AS period FROM history
      WHERE check_name = ANY(%s) AND resolution = %s AND start >= %s AND start < %s) AS hours
GROUP BY check_name, period ORDER BY check_name, period
"""


def _by_check(buckets: Iterable[HistoryBucket]) -> dict[str, list[HistoryBucket]]:
    """Buckets in order, grouped by their check (each group keeps the order)."""
    found: dict[str, list[HistoryBucket]] = {}
    for b in buckets:
        found.setdefault(b.check, []).append(b)
    return found


def _bucket(r: DictRow) -> HistoryBucket:
    return HistoryBucket(
        r["check_name"], r["resolution"], r["start"], r["up"], r["degraded"],
        r["down"], r["blind"], r["sum_ms"], r["max_ms"], tuple(r["latency"]),
    )  # fmt: skip


_CONFIRM_CHANNEL = "monitor_confirmations"
_CHANGES_CHANNEL = "monitor_changes"  # incidents and silences changed (`store.readings`)
_READINGS_OVERLAP_S = 3.0  # rows written this long before a reader's cursor are read again


async def _changed(cur: psycopg.AsyncCursor[DictRow], what: str) -> None:
    """Tells every listening replica, when the transaction commits, that `what` changed."""
    await cur.execute("SELECT pg_notify(%s, %s)", (_CHANGES_CHANNEL, what))


# One slot of another replica's open request that this one has not claimed, answered or
# declined (one vantage point per replica), locked without waiting on the others'.
_CLAIM_CONFIRMATION = """
UPDATE confirmations SET claimed_by = %(me)s, claimed_at = now() WHERE id = (
    SELECT c.id FROM confirmations c
    WHERE c.claimed_by IS NULL AND c.seen IS NULL AND c.open_until > now()
      AND c.requested_by <> %(me)s AND NOT (%(me)s = ANY(c.declined))
      AND NOT EXISTS (
          SELECT 1 FROM confirmations d WHERE d.request = c.request
            AND (d.claimed_by = %(me)s OR %(me)s = ANY(d.declined))
      )
    ORDER BY c.id LIMIT 1 FOR UPDATE SKIP LOCKED
) RETURNING *
"""


_CODEC = _rows.Codec(time_in=_ts, time_out=_utc, flag_in=bool, json_out=lambda v: v)
