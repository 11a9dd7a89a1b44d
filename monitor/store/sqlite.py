"""The default `Store`: one SQLite file under the state directory.

The daemon is its only writer. Each method runs its SQL inline (a local file answers in
microseconds) as one short transaction, so an incident row and its timeline entries land
together or not at all. The schema grows by numbered migrations counted in `user_version`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from monitor.core.alertstate import CheckState
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
from monitor.store import rows as _rows
from monitor.store.base import (
    HOUR,
    HOUR_RETENTION_S,
    LATENCY_BOUNDS_MS,
    MINUTE,
    MINUTE_RETENTION_S,
    HistoryBucket,
    LocalHistoryReads,
    RunCounts,
    SoleHolder,
    StoreError,
    with_hours,
)

__all__ = ["MIGRATIONS", "SqliteStore", "default_state_path"]

# Append only: `PRAGMA user_version` counts the scripts applied, so never edit or reorder
# one that has shipped. Each runs in its own transaction together with the version bump.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE check_states (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT,
        ups INTEGER NOT NULL,
        non_downs INTEGER NOT NULL,
        bads INTEGER NOT NULL,
        downs INTEGER NOT NULL
    );
    -- AUTOINCREMENT: incident ids leave the process (PagerDuty dedup keys, URLs), so one
    -- must never be handed out twice.
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        check_name TEXT,
        source TEXT NOT NULL,
        acknowledged_at TEXT,
        resolved_at TEXT,
        assignee TEXT,
        rule TEXT,
        failure TEXT,
        message TEXT NOT NULL,
        suppressed TEXT,
        report_url TEXT,
        auto_resolve INTEGER NOT NULL,
        reopened INTEGER NOT NULL
    );
    CREATE INDEX incidents_key ON incidents (key, opened_at);
    CREATE INDEX incidents_status ON incidents (status, opened_at);
    CREATE INDEX incidents_opened ON incidents (opened_at, id);
    -- The dedup rule itself: at most one incident per key that is not resolved.
    CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents (key) WHERE status != 'resolved';
    CREATE TABLE timeline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        text TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX timeline_incident ON timeline (incident_id, id);
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        matchers TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        author TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expired_at TEXT
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    """,
    # 2: escalation positions, the notification outbox, and notifier state.
    """
    CREATE TABLE escalations (
        incident_id INTEGER PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
        policy TEXT NOT NULL,
        step INTEGER NOT NULL,
        pass_no INTEGER NOT NULL,
        next_at TEXT NOT NULL,
        mode TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        notifier TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        sent_at TEXT,
        last_error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_due ON outbox (notifier, status, next_attempt_at);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: drills (incidents that test the paging path).
    """
    ALTER TABLE incidents ADD COLUMN drill INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: last known good (JSON), kept with the incident as it was when it failed.
    """
    ALTER TABLE incidents ADD COLUMN last_good TEXT;
    """,
    # 5: blind checks (what was believed before, and why blind); repeated timeline entries
    # collapsed into one with a count and the time last seen.
    """
    ALTER TABLE check_states ADD COLUMN blinds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE check_states ADD COLUMN seen TEXT;
    ALTER TABLE check_states ADD COLUMN seen_since TEXT;
    ALTER TABLE check_states ADD COLUMN cause TEXT;
    ALTER TABLE timeline ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE timeline ADD COLUMN last_at TEXT;
    """,
    # 6: an escalation's epoch as a column; before, it was a key of the policy's JSON.
    """
    ALTER TABLE escalations ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    UPDATE escalations SET epoch = CAST(json_extract(policy, '$.epoch') AS INTEGER)
        WHERE json_valid(policy) AND json_type(policy, '$.epoch') = 'integer';
    """,
    # 7: run history, per check and minute (kept 48 h) or hour (kept 90 days); l0..l7 are
    # the latency histogram's counts (`LATENCY_BOUNDS_MS`, then slower).
    """
    CREATE TABLE history (
        check_name TEXT NOT NULL,
        resolution INTEGER NOT NULL,
        start INTEGER NOT NULL,
        up INTEGER NOT NULL,
        degraded INTEGER NOT NULL,
        down INTEGER NOT NULL,
        blind INTEGER NOT NULL,
        sum_ms REAL NOT NULL,
        max_ms REAL NOT NULL,
        l0 INTEGER NOT NULL, l1 INTEGER NOT NULL, l2 INTEGER NOT NULL, l3 INTEGER NOT NULL,
        l4 INTEGER NOT NULL, l5 INTEGER NOT NULL, l6 INTEGER NOT NULL, l7 INTEGER NOT NULL,
        PRIMARY KEY (check_name, resolution, start)
    ) WITHOUT ROWID;
    CREATE INDEX history_age ON history (resolution, start);
    """,
    # 8: an incident's public note (what the status page says of it), and the resolved
    # incidents by when they were resolved (the public incident history).
    """
    ALTER TABLE incidents ADD COLUMN public_note TEXT;
    CREATE INDEX incidents_resolved ON incidents (resolved_at, id) WHERE status = 'resolved';
    """,
)


def default_state_path(state_dir: str) -> Path:
    """Where the daemon keeps its database inside `state_dir`."""
    return Path(state_dir) / "monitor.sqlite3"


class SqliteStore(SoleHolder, LocalHistoryReads):
    """`Store` on a local SQLite file in WAL mode, so readers never block the daemon.

    Args:
        path: the database file; its directory is created at `open()` if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        if self._db is not None:
            return
        try:
            _private_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its directory: {exc}") from exc
        with self._errors("cannot open database"):
            _private_file(self.path)
            db = sqlite3.connect(self.path, isolation_level=None)
        try:
            with self._errors("cannot open database"):
                _prepare(db, self.path)
        except Exception:
            db.close()  # a half-opened connection would keep the file locked
            raise
        self._db = db

    async def close(self) -> None:
        self._closed = True
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    async def backup(self, dest: str | os.PathLike[str]) -> None:
        """Writes a consistent copy of the database to `dest` while the store stays open."""
        db = self._conn()
        target = _backup_target(Path(dest), self.path)
        with self._errors(f"backup to {target} failed"):
            _private_file(target)
            copy = sqlite3.connect(target)
            try:
                db.backup(copy)
            finally:
                copy.close()

    # --- alert state per check -------------------------------------------------------

    async def load_check_states(self) -> dict[str, CheckState]:
        with self._errors("cannot read check states"):
            rows = self._conn().execute("SELECT * FROM check_states").fetchall()
        return {row["name"]: _rows.check_state(row, _CODEC) for row in rows}

    async def save_check_state(self, check: str, state: CheckState) -> None:
        with self._write("cannot save check state") as db:
            db.execute(
                "INSERT INTO check_states (name, state, since, ups, non_downs, bads, downs,"
                " blinds, seen, seen_since, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
                " since = excluded.since, ups = excluded.ups, non_downs = excluded.non_downs,"
                " bads = excluded.bads, downs = excluded.downs, blinds = excluded.blinds,"
                " seen = excluded.seen, seen_since = excluded.seen_since, cause = excluded.cause",
                (check, state.state.value, _opt_text(state.since), state.ups,
                 state.non_downs, state.bads, state.downs, state.blinds,
                 state.seen.value if state.seen else None, _opt_text(state.seen_since),
                 state.cause),
            )  # fmt: skip

    async def delete_check_states(self, checks: Iterable[str]) -> None:
        with self._write("cannot delete check states") as db:
            db.executemany("DELETE FROM check_states WHERE name = ?", ((c,) for c in checks))

    # --- incidents and their timelines -----------------------------------------------

    async def create_incident(
        self, incident: Incident, entries: Sequence[TimelineEntry]
    ) -> Incident:
        with self._write("cannot create incident") as db:
            with _one_open_per_key(incident.key):
                cur = db.execute(_INSERT_INCIDENT, _rows.incident_params(incident, _CODEC))
            assert cur.lastrowid is not None  # noqa: S101  an INSERT always sets it
            created = replace(incident, id=cur.lastrowid)
            _append(db, created.id, entries)
        return created

    async def update_incident(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        with self._write("cannot update incident") as db:
            with _one_open_per_key(incident.key):
                cur = db.execute(
                    _UPDATE_INCIDENT, _rows.incident_params(incident, _CODEC) | {"id": incident.id}
                )
            if cur.rowcount == 0:
                raise StoreError(f"no incident {incident.id} to update")
            _append(db, incident.id, entries)

    async def get_incident(self, incident_id: int) -> Incident | None:
        return self._one_incident("SELECT * FROM incidents WHERE id = ?", (incident_id,))

    async def open_incident(self, key: str) -> Incident | None:
        return self._one_incident(
            "SELECT * FROM incidents WHERE key = ? AND status != 'resolved'", (key,)
        )

    async def latest_incident(self, key: str) -> Incident | None:
        return self._one_incident(
            "SELECT * FROM incidents WHERE key = ? ORDER BY opened_at DESC, id DESC LIMIT 1",
            (key,),
        )

    async def list_incidents(
        self,
        *,
        statuses: Iterable[IncidentStatus] | None = None,
        severities: Iterable[Severity] | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        # The filters travel as JSON arrays, so the SQL text stays fixed whatever is given.
        params = {
            "statuses": None if statuses is None else json.dumps([s.value for s in statuses]),
            "severities": None if severities is None else json.dumps([s.value for s in severities]),
            "limit": limit,
        }
        with self._errors("cannot list incidents"):
            rows = self._conn().execute(_LIST_INCIDENTS, params).fetchall()
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
            "since": _text(since),
            "sources": None if sources is None else json.dumps([s.value for s in sources]),
            "severities": None if severities is None else json.dumps([s.value for s in severities]),
            "limit": max(0, limit),
        }
        with self._errors("cannot list resolved incidents"):
            rows = self._conn().execute(_RESOLVED_SINCE, params).fetchall()
        return [_rows.incident(row, _CODEC) for row in rows]

    async def timeline(self, incident_id: int) -> list[TimelineEntry]:
        with self._errors("cannot read timeline"):
            rows = (
                self._conn()
                .execute("SELECT * FROM timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
                .fetchall()
            )
        return [_rows.entry(row, _CODEC) for row in rows]

    async def repeat_entry(
        self, incident_id: int, events: Sequence[str], at: datetime
    ) -> TimelineEntry | None:
        """Counts one more of the incident's latest entry among `events`: the same thing
        seen again. Returns it as it is now; None when there is none."""
        with self._write("cannot update timeline") as db:
            row = db.execute(
                "SELECT id FROM timeline WHERE incident_id = ? AND event IN"
                " (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 1",
                (incident_id, json.dumps(list(events))),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE timeline SET count = count + 1, last_at = ? WHERE id = ?",
                (_text(at), row["id"]),
            )
            updated = db.execute("SELECT * FROM timeline WHERE id = ?", (row["id"],)).fetchone()
        return _rows.entry(updated, _CODEC)

    # --- silences --------------------------------------------------------------------

    async def create_silence(self, silence: Silence) -> Silence:
        with self._write("cannot create silence") as db:
            cur = db.execute(
                "INSERT INTO silences (matchers, starts_at, ends_at, author, comment, created_at,"
                " expired_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_matchers_json(silence.matchers), _text(silence.starts_at),
                 _text(silence.ends_at), silence.author, silence.comment,
                 _text(silence.created_at), _opt_text(silence.expired_at)),
            )  # fmt: skip
            assert cur.lastrowid is not None  # noqa: S101  an INSERT always sets it
        return replace(silence, id=cur.lastrowid)

    async def list_silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        with self._errors("cannot list silences"):
            if active_at is None:
                rows = self._conn().execute("SELECT * FROM silences ORDER BY id").fetchall()
            else:
                at = _text(active_at)
                rows = self._conn().execute(_ACTIVE_SILENCES, {"at": at}).fetchall()
        return [_rows.silence(row, _CODEC) for row in rows]

    async def expire_silence(self, silence_id: int, at: datetime) -> Silence | None:
        with self._write("cannot expire silence") as db:
            db.execute("UPDATE silences SET expired_at = ? WHERE id = ?", (_text(at), silence_id))
            row = db.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return None if row is None else _rows.silence(row, _CODEC)

    # --- escalations and the outbox ---------------------------------------------------

    async def load_escalations(self) -> list[EscalationState]:
        with self._errors("cannot read escalations"):
            rows = self._conn().execute("SELECT * FROM escalations ORDER BY incident_id").fetchall()
        return [_escalation(r) for r in rows]

    async def commit_escalation(
        self, incident_id: int, state: EscalationState | None, items: Sequence[OutboxItem]
    ) -> None:
        with self._write("cannot save escalation") as db:
            if state is None:
                db.execute("DELETE FROM escalations WHERE incident_id = ?", (incident_id,))
            else:
                _upsert_escalation(db, incident_id, state)
            _insert_items(db, items)

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
        if self._fenced(token):
            return False
        with self._write("cannot save escalation") as db:
            row = db.execute(
                "SELECT * FROM escalations WHERE incident_id = ?", (incident_id,)
            ).fetchone()
            current = None if row is None else _escalation(row)
            if current != expected:
                return False
            if state is None:
                db.execute("DELETE FROM escalations WHERE incident_id = ?", (incident_id,))
            else:
                _upsert_escalation(db, incident_id, state)
            _insert_items(db, items)
        return True

    async def claim_due(
        self, notifier: str, now: datetime, token: int, limit: int
    ) -> list[OutboxItem] | None:
        pending = [] if self._fenced(token) else await self.pending_notifications(notifier)
        return self._claim_due(pending, now, token, limit)

    async def claim_notifications(self, ids: Sequence[int], token: int) -> list[int] | None:
        if self._fenced(token):
            return None
        wanted = sorted(set(ids))
        with self._errors("cannot claim notifications"):
            rows = (
                self._conn()
                .execute(
                    "SELECT id FROM outbox WHERE id IN (SELECT value FROM json_each(?))"
                    " AND status = 'pending' ORDER BY id",
                    (json.dumps(wanted),),
                )
                .fetchall()
            )
        return [int(r["id"]) for r in rows]

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        with self._write("cannot enqueue notifications") as db:
            _insert_items(db, items)

    async def due_notifications(self, notifier: str, now: datetime, limit: int) -> list[OutboxItem]:
        with self._errors("cannot read the outbox"):
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM outbox WHERE notifier = ? AND status = 'pending'"
                    " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                    (notifier, _text(now), limit),
                )
                .fetchall()
            )
        return [_rows.item(r, _CODEC) for r in rows]

    async def next_notification_at(self, notifier: str) -> datetime | None:
        with self._errors("cannot read the outbox"):
            row = (
                self._conn()
                .execute(
                    "SELECT MIN(next_attempt_at) AS at FROM outbox"
                    " WHERE notifier = ? AND status = 'pending'",
                    (notifier,),
                )
                .fetchone()
            )
        return _opt_time(row["at"])

    async def pending_notifications(self, notifier: str) -> list[OutboxItem]:
        with self._errors("cannot read the outbox"):
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM outbox WHERE notifier = ? AND status = 'pending' ORDER BY id",
                    (notifier,),
                )
                .fetchall()
            )
        return [_rows.item(r, _CODEC) for r in rows]

    async def settle_notifications(
        self, ids: Sequence[int], status: OutboxStatus, items: Sequence[OutboxItem]
    ) -> None:
        with self._write("cannot settle notifications") as db:
            db.executemany(
                "UPDATE outbox SET status = ? WHERE id = ? AND status = 'pending'",
                [(OutboxStatus(status).value, i) for i in ids],
            )
            _insert_items(db, items)

    async def update_notification(self, item: OutboxItem) -> None:
        with self._write("cannot update a notification") as db:
            db.execute(
                "UPDATE outbox SET attempts = ?, status = ?, next_attempt_at = ?, sent_at = ?,"
                " last_error = ? WHERE id = ?",
                (item.attempts, OutboxStatus(item.status).value, _text(item.next_attempt_at),
                 _opt_text(item.sent_at),
                 item.last_error, item.id),
            )  # fmt: skip

    async def outbox_depth(self) -> tuple[int, datetime | None]:
        with self._errors("cannot read the outbox"):
            row = (
                self._conn()
                .execute(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE status = 'pending'"
                )
                .fetchone()
            )
        return int(row["n"]), _opt_time(row["oldest"])

    async def kv_get(self, key: str) -> str | None:
        with self._errors("cannot read notifier state"):
            row = self._conn().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    async def kv_delete(self, keys: Iterable[str]) -> None:
        with self._write("cannot delete notifier state") as db:
            db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])

    async def kv_prefix(self, prefix: str) -> dict[str, str]:
        with self._errors("cannot read notifier state"):
            rows = (
                self._conn()
                .execute(
                    "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                )
                .fetchall()
            )
        return {str(r["key"]): str(r["value"]) for r in rows}

    async def kv_set(self, key: str, value: str) -> None:
        with self._write("cannot save notifier state") as db:
            db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- run history -----------------------------------------------------------------

    async def add_history(self, buckets: Sequence[HistoryBucket]) -> None:
        rows = [_bucket_row(b) for b in with_hours(buckets)]
        with self._write("cannot save history") as db:
            db.executemany(_ADD_HISTORY, rows)

    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]:
        with self._errors("cannot read history"):
            rows = (
                self._conn()
                .execute(
                    "SELECT * FROM history WHERE check_name = ? AND resolution = ?"
                    " AND start >= ? AND start < ? ORDER BY start",
                    (check, resolution, since, until),
                )
                .fetchall()
            )
        return [_bucket(r) for r in rows]

    async def count_runs(
        self, checks: Sequence[str], resolution: int, since: int, until: int
    ) -> RunCounts:
        with self._errors("cannot read history"):
            row = (
                self._conn()
                .execute(
                    "SELECT COALESCE(SUM(up), 0), COALESCE(SUM(degraded), 0),"
                    " COALESCE(SUM(down), 0), COALESCE(SUM(blind), 0) FROM history"
                    " WHERE check_name IN (SELECT value FROM json_each(?))"
                    " AND resolution = ? AND start >= ? AND start < ?",
                    (json.dumps(list(checks)), resolution, since, until),
                )
                .fetchone()
            )
        return RunCounts(*(int(n) for n in row))

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]:
        with self._errors("cannot read history"):
            rows = (
                self._conn()
                .execute(_HISTORY_TOTALS, (size, size, check, HOUR, since, until))
                .fetchall()
            )
        return [_bucket(r) for r in rows]

    async def prune_history(self, now: int) -> None:
        with self._write("cannot prune history") as db:
            for resolution, keep in ((MINUTE, MINUTE_RETENTION_S), (HOUR, HOUR_RETENTION_S)):
                db.execute(
                    "DELETE FROM history WHERE resolution = ? AND start < ?",
                    (resolution, now - keep),
                )

    async def delete_history(self, checks: Iterable[str]) -> None:
        with self._write("cannot delete history") as db:
            db.executemany("DELETE FROM history WHERE check_name = ?", [(c,) for c in checks])

    # --- plumbing --------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            state = "closed" if self._closed else "not open"
            raise StoreError(f"{self.path}: store is {state}")
        return self._db

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turns SQLite's errors into `StoreError`, naming the file and the operation."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: {what}: {exc}") from exc

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front (waiting up to
        busy_timeout), so another process cannot make it fail halfway with SQLITE_BUSY."""
        db = self._conn()
        with self._errors(what):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            finally:
                # Still open means the body or COMMIT raised: undo everything it wrote.
                if db.in_transaction:
                    db.rollback()

    def _one_incident(self, sql: str, params: tuple[object, ...]) -> Incident | None:
        with self._errors("cannot read incident"):
            row = self._conn().execute(sql, params).fetchone()
        return None if row is None else _rows.incident(row, _CODEC)


def _escalation(r: sqlite3.Row) -> EscalationState:
    return EscalationState(r["incident_id"], r["policy"], r["step"], r["pass_no"],
                           _time(r["next_at"]), EscalationMode(r["mode"]), r["epoch"])  # fmt: skip


def _upsert_escalation(db: sqlite3.Connection, incident_id: int, state: EscalationState) -> None:
    db.execute(
        "INSERT INTO escalations (incident_id, policy, step, pass_no, next_at, mode,"
        " epoch) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET"
        " policy = excluded.policy, step = excluded.step, pass_no = excluded.pass_no,"
        " next_at = excluded.next_at, mode = excluded.mode, epoch = excluded.epoch",
        (incident_id, state.policy, state.step, state.pass_no, _text(state.next_at),
         EscalationMode(state.mode).value, state.epoch),
    )  # fmt: skip


def _backup_target(target: Path, live: Path) -> Path:
    # Copying onto the live file would have SQLite rewrite the database under itself.
    if target.resolve() == live.resolve():
        raise StoreError(f"{target}: a backup cannot overwrite the live database")
    try:
        _private_dir(target.parent)
    except OSError as exc:
        raise StoreError(f"{target}: cannot create its directory: {exc}") from exc
    return target


def _private_dir(path: Path) -> None:
    """Creates `path` (and missing parents) readable by the owner only (0700)."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is cut by the umask; parents keep the umask's


def _private_file(path: Path) -> None:
    """Creates `path` 0600, or takes group and other access away from an existing file.

    SQLite gives the -wal and -shm files the mode of the database file, so they are
    private too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


# --- opening and migrating ---------------------------------------------------------------


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Checks the schema version, then switches to WAL and applies missing migrations."""
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 5000")
    # Read before any PRAGMA that writes (journal_mode rewrites the header): a file from
    # a newer release, or not a database at all, must be left exactly as it was.
    version = _user_version(db)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {version} is newer than this release knows"
            f" ({len(MIGRATIONS)}); upgrade the monitor or restore an older backup"
        )
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")  # safe in WAL: a crash loses at most the last commits
    db.execute("PRAGMA foreign_keys = ON")
    while _migrate_one(db):
        pass


def _migrate_one(db: sqlite3.Connection) -> bool:
    """Applies the next migration, if any; False when the schema is current."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = _user_version(db)
        if version >= len(MIGRATIONS):
            db.execute("COMMIT")
            return False
        # executescript() would COMMIT first, so run the statements one by one.
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {version + 1:d}")
        db.execute("COMMIT")
        return True
    finally:
        if db.in_transaction:
            db.rollback()


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf
            buf = ""
    if buf.strip():
        raise ValueError(f"migration ends with an incomplete statement: {buf.strip()[:60]!r}")


# --- rows <-> values ---------------------------------------------------------------------

_INSERT_INCIDENT = """
INSERT INTO incidents (
    key, title, status, severity, opened_at, updated_at, check_name, source,
    acknowledged_at, resolved_at, assignee, rule, failure, message, suppressed,
    report_url, auto_resolve, reopened, drill, last_good, public_note
) VALUES (
    :key, :title, :status, :severity, :opened_at, :updated_at, :check_name, :source,
    :acknowledged_at, :resolved_at, :assignee, :rule, :failure, :message, :suppressed,
    :report_url, :auto_resolve, :reopened, :drill, :last_good, :public_note
)
"""

_UPDATE_INCIDENT = """
UPDATE incidents SET
    key = :key, title = :title, status = :status, severity = :severity,
    opened_at = :opened_at, updated_at = :updated_at, check_name = :check_name,
    source = :source, acknowledged_at = :acknowledged_at, resolved_at = :resolved_at,
    assignee = :assignee, rule = :rule, failure = :failure, message = :message,
    suppressed = :suppressed, report_url = :report_url, auto_resolve = :auto_resolve,
    reopened = :reopened, drill = :drill, last_good = :last_good,
    public_note = :public_note
WHERE id = :id
"""

_LIST_INCIDENTS = """
SELECT * FROM incidents
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:severities IS NULL OR severity IN (SELECT value FROM json_each(:severities)))
ORDER BY opened_at DESC, id DESC
LIMIT :limit
"""

# INDEXED BY: without statistics the planner would take `incidents_status` and sort every
# resolved incident ever; this index reads the last resolved first and stops at the limit.
_RESOLVED_SINCE = """
SELECT * FROM incidents INDEXED BY incidents_resolved
WHERE status = 'resolved' AND resolved_at >= :since
  AND (:sources IS NULL OR source IN (SELECT value FROM json_each(:sources)))
  AND (:severities IS NULL OR severity IN (SELECT value FROM json_each(:severities)))
ORDER BY resolved_at DESC, id DESC
LIMIT :limit
"""

# Silence.active() in SQL; valid because every timestamp is stored in one fixed format.
_ACTIVE_SILENCES = """
SELECT * FROM silences
WHERE starts_at <= :at AND ends_at > :at AND (expired_at IS NULL OR expired_at > :at)
ORDER BY id
"""


@contextmanager
def _one_open_per_key(key: str) -> Iterator[None]:
    """Names the rule when the partial unique index on `incidents(key)` rejects a write."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_UNIQUE:
            raise
        msg = f"incident key {key!r} already has an incident that is not resolved"
        raise StoreError(msg) from exc


def _text(at: datetime) -> str:
    """Fixed-width UTC ISO-8601, so that text order is time order in SQL comparisons."""
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store keeps aware UTC times only")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_text(at: datetime | None) -> str | None:
    return None if at is None else _text(at)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _append(db: sqlite3.Connection, incident_id: int, entries: Sequence[TimelineEntry]) -> None:
    """Appends to the timeline of `incident_id`, whatever the entries' own `incident_id`."""
    for e in entries:
        db.execute(
            "INSERT INTO timeline (incident_id, at, event, actor, text, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (incident_id, _text(e.at), e.event, e.actor, e.text, _data_json(e.data)),
        )


def _data_json(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), default=_json_default, ensure_ascii=False)


def _json_default(value: object) -> object:
    """Entry data may hold datetimes and read-only mappings; anything else is a bug."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"timeline data of type {type(value).__name__} is not JSON serializable")


def _matchers_json(matchers: Mapping[str, tuple[str, ...]]) -> str:
    return json.dumps({k: list(v) for k, v in matchers.items()}, ensure_ascii=False)


def _insert_items(db: sqlite3.Connection, items: Sequence[OutboxItem]) -> None:
    # INSERT OR IGNORE on the unique key: the idempotency of pages across crashes.
    db.executemany(
        "INSERT OR IGNORE INTO outbox (key, notifier, payload, created_at, next_attempt_at,"
        " attempts, status, sent_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(i.key, i.notifier, i.payload, _text(i.created_at), _text(i.next_attempt_at), i.attempts,
          OutboxStatus(i.status).value, _opt_text(i.sent_at), i.last_error) for i in items],
    )  # fmt: skip


# Adding is the merge: counts and the histogram sum, max is the max.
_ADD_HISTORY = """
INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (check_name, resolution, start) DO UPDATE SET
    up = up + excluded.up, degraded = degraded + excluded.degraded,
    down = down + excluded.down, blind = blind + excluded.blind,
    sum_ms = sum_ms + excluded.sum_ms, max_ms = max(max_ms, excluded.max_ms),
    l0 = l0 + excluded.l0, l1 = l1 + excluded.l1, l2 = l2 + excluded.l2,
    l3 = l3 + excluded.l3, l4 = l4 + excluded.l4, l5 = l5 + excluded.l5,
    l6 = l6 + excluded.l6, l7 = l7 + excluded.l7
"""


# Hour rows added up per period: the same columns as a row of `history`.
_HISTORY_TOTALS = """
SELECT check_name, ? AS resolution, period AS start, sum(up) AS up, sum(degraded) AS degraded,
       sum(down) AS down, sum(blind) AS blind, sum(sum_ms) AS sum_ms, max(max_ms) AS max_ms,
       sum(l0) AS l0, sum(l1) AS l1, sum(l2) AS l2, sum(l3) AS l3, sum(l4) AS l4,
       sum(l5) AS l5, sum(l6) AS l6, sum(l7) AS l7
FROM (SELECT *, start - start % ? AS period FROM history
      WHERE check_name = ? AND resolution = ? AND start >= ? AND start < ?)
GROUP BY period ORDER BY period
"""


def _bucket_row(b: HistoryBucket) -> tuple[object, ...]:
    return (b.check, b.resolution, b.start, b.up, b.degraded, b.down, b.blind, b.sum_ms,
            b.max_ms, *b.latency)  # fmt: skip


def _bucket(row: sqlite3.Row) -> HistoryBucket:
    latency = tuple(row[f"l{i}"] for i in range(len(LATENCY_BOUNDS_MS) + 1))
    return HistoryBucket(
        row["check_name"], row["resolution"], row["start"], row["up"], row["degraded"],
        row["down"], row["blind"], row["sum_ms"], row["max_ms"], latency,
    )  # fmt: skip


_CODEC = _rows.Codec(time_in=_text, time_out=_time, flag_in=int, json_out=json.loads)
