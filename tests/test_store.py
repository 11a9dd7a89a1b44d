"""The SQLite store against real files: round trips, rules the schema enforces, migrations,
atomicity and the file-level behaviour (WAL, backup, corrupt or newer files)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import pytest

import monitor.store.sqlite as sqlite_store
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import Incident, IncidentStatus, Severity, Silence, TimelineEntry
from monitor.store import Store, StoreError
from monitor.store.sqlite import MIGRATIONS, SqliteStore, default_state_path

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
TRIGGERED, ACKED, RESOLVED = (
    IncidentStatus.TRIGGERED,
    IncidentStatus.ACKNOWLEDGED,
    IncidentStatus.RESOLVED,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def incident(key: str = "web", minutes: float = 0, **changes: object) -> Incident:
    base = Incident(
        id=0,
        key=key,
        title=f"{key} is down",
        status=TRIGGERED,
        severity=Severity.P1,
        opened_at=at(minutes),
        updated_at=at(minutes),
        check=key,
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: fields by name


def entry(event: str, minutes: float = 0, **data: object) -> TimelineEntry:
    return TimelineEntry(0, at(minutes), event, "monitor", f"{event} text", data)


def silence(start: float, end: float, **changes: object) -> Silence:
    base = Silence(
        id=0,
        matchers={"checks": ("web-*",)},
        starts_at=at(start),
        ends_at=at(end),
        author="ana",
        comment="deploy",
        created_at=at(start - 1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: fields by name


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "monitor.sqlite3"  # the directory does not exist yet


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await s.open()
    yield s
    await s.close()


async def reopened(path: Path) -> SqliteStore:
    s = SqliteStore(path)
    await s.open()
    return s


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def count_rows(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def as_store(s: SqliteStore) -> Store:
    return s  # mypy checks here that SqliteStore satisfies the protocol


def test_default_state_path() -> None:
    assert default_state_path("/var/lib/monitor") == Path("/var/lib/monitor/monitor.sqlite3")


# --- incidents -------------------------------------------------------------------------


FULL = incident(
    "api",
    status=ACKED,
    severity=Severity.P0,
    source="manual",
    check=None,
    acknowledged_at=at(5),
    resolved_at=at(9),
    updated_at=at(9),
    assignee="ana",
    rule="p0-api",
    failure="timeout",
    message="no answer in 10s — ünïcode",
    suppressed="silence 3",
    report_url="https://github.com/o/r/issues/1",
    auto_resolve=False,
    reopened=2,
    drill=True,
    last_good={"at": T0.isoformat(), "values": {"version": "1.2.3"}, "text": "t",
               "command": "npm dist-tag add a@1.2.3 latest", "url": None},
)  # fmt: skip
UNTRIAGED = incident("manual-1", severity=None, source="manual", check=None)


@pytest.mark.parametrize(
    "original", [FULL, UNTRIAGED, incident()], ids=["full", "untriaged", "minimal"]
)
async def test_incident_round_trip(store: SqliteStore, original: Incident) -> None:
    created = await store.create_incident(replace(original, id=999), [])
    assert created.id != 999  # the given id is ignored
    assert created == replace(original, id=created.id)
    assert await store.get_incident(created.id) == created
    assert (await store.get_incident(created.id)).opened_at.tzinfo is UTC  # type: ignore[union-attr]


async def test_get_missing_incident(store: SqliteStore) -> None:
    assert await store.get_incident(42) is None


async def test_times_in_other_zones_come_back_as_utc(store: SqliteStore) -> None:
    cest = timezone(timedelta(hours=2))
    created = await store.create_incident(incident(opened_at=T0.astimezone(cest)), [])
    got = await store.get_incident(created.id)
    assert got is not None
    assert got.opened_at == T0
    assert got.opened_at.tzinfo is UTC


async def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create_incident(incident(opened_at=datetime(2026, 1, 1)), [])  # noqa: DTZ001
    assert await store.list_incidents() == []


async def test_create_then_update_keeps_timeline_order(store: SqliteStore) -> None:
    # Same timestamps on purpose: order is insertion order, not time order.
    created = await store.create_incident(incident(), [entry("opened"), entry("suppressed")])
    acked = replace(created, status=ACKED, acknowledged_at=at(3), assignee="ana")
    await store.update_incident(acked, [entry("acknowledged", 3), entry("note", 1)])
    resolved = replace(acked, status=RESOLVED, resolved_at=at(4))
    await store.update_incident(resolved, [entry("recovered", 4)])

    assert await store.get_incident(created.id) == resolved
    timeline = await store.timeline(created.id)
    assert [e.event for e in timeline] == [
        "opened",
        "suppressed",
        "acknowledged",
        "note",
        "recovered",
    ]
    assert {e.incident_id for e in timeline} == {created.id}  # entries' own id is ignored
    assert timeline[2] == replace(entry("acknowledged", 3), incident_id=created.id)


async def test_timelines_are_per_incident(store: SqliteStore) -> None:
    a = await store.create_incident(incident("a"), [entry("a1")])
    b = await store.create_incident(incident("b"), [entry("b1")])
    await store.update_incident(a, [entry("a2")])
    assert [e.event for e in await store.timeline(a.id)] == ["a1", "a2"]
    assert [e.event for e in await store.timeline(b.id)] == ["b1"]
    assert await store.timeline(999) == []


async def test_timeline_data_round_trip(store: SqliteStore) -> None:
    data = {
        "rule": "p1",
        "status": 503,
        "ratio": 0.5,
        "flag": True,
        "none": None,
        "since": at(2),
        "chain": ("https://a", "https://b"),
        "nested": MappingProxyType({"expires_at": at(60), "names": ["ü"]}),
    }
    opened = TimelineEntry(0, T0, "opened", "monitor", "text", data)
    created = await store.create_incident(incident(), [opened, entry("empty")])
    first, second = await store.timeline(created.id)
    assert first.data == {
        "rule": "p1",
        "status": 503,
        "ratio": 0.5,
        "flag": True,
        "none": None,
        "since": at(2).isoformat(),  # datetimes come back as ISO strings
        "chain": ["https://a", "https://b"],
        "nested": {"expires_at": at(60).isoformat(), "names": ["ü"]},
    }
    assert second.data == {}


async def test_update_of_missing_incident_raises(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="no incident 7"):
        await store.update_incident(incident(id=7), [entry("note")])
    assert await store.timeline(7) == []


async def test_open_and_latest_incident(store: SqliteStore) -> None:
    assert await store.open_incident("web") is None
    assert await store.latest_incident("web") is None
    old = await store.create_incident(incident(minutes=0, status=RESOLVED, resolved_at=at(5)), [])
    assert await store.open_incident("web") is None
    assert await store.latest_incident("web") == old

    new = await store.create_incident(incident(minutes=10), [])
    await store.create_incident(incident("other", minutes=20), [])
    assert await store.open_incident("web") == new
    assert await store.latest_incident("web") == new

    resolved = replace(new, status=RESOLVED, resolved_at=at(11))
    await store.update_incident(resolved, [])
    assert await store.open_incident("web") is None
    assert await store.latest_incident("web") == resolved


async def test_acknowledged_counts_as_open(store: SqliteStore) -> None:
    acked = await store.create_incident(incident(status=ACKED, acknowledged_at=at(1)), [])
    assert await store.open_incident("web") == acked


async def test_one_unresolved_incident_per_key(store: SqliteStore, db_path: Path) -> None:
    first = await store.create_incident(incident(minutes=0), [entry("opened")])
    with pytest.raises(StoreError, match="'web' already has an incident"):
        await store.create_incident(incident(minutes=1, status=ACKED), [entry("opened")])
    assert count_rows(db_path, "incidents") == 1
    assert count_rows(db_path, "timeline") == 1

    # Resolved ones do not count, and other keys are independent.
    await store.create_incident(incident(minutes=-10, status=RESOLVED, resolved_at=at(-5)), [])
    await store.create_incident(incident("api", minutes=2), [])

    # Reopening an old incident while another is open breaks the rule too; nothing changes.
    old = await store.latest_incident("web")
    resolve_first = replace(first, status=RESOLVED, resolved_at=at(3))
    await store.update_incident(resolve_first, [])
    second = await store.create_incident(incident(minutes=4), [])
    assert old is not None
    with pytest.raises(StoreError, match="already has an incident"):
        await store.update_incident(replace(resolve_first, status=TRIGGERED), [entry("reopened")])
    assert await store.get_incident(first.id) == resolve_first
    assert [e.event for e in await store.timeline(first.id)] == ["opened"]
    assert await store.open_incident("web") == second


async def test_list_incidents_order_and_filters(store: SqliteStore) -> None:
    made = {}
    for name, minutes, status, severity in [
        ("a", 0, RESOLVED, Severity.P0),
        ("b", 10, TRIGGERED, Severity.P1),
        ("c", 10, ACKED, None),  # same opened_at as b: the later id comes first
        ("d", 5, TRIGGERED, Severity.P2),
        ("e", 20, TRIGGERED, Severity.P0),
    ]:
        resolved_at = at(minutes + 1) if status is RESOLVED else None
        made[name] = await store.create_incident(
            incident(name, minutes, status=status, severity=severity, resolved_at=resolved_at), []
        )

    async def keys(**filters: object) -> str:
        return "".join(i.key for i in await store.list_incidents(**filters))  # type: ignore[arg-type]

    assert await keys() == "ecbda"
    assert await store.list_incidents() == [made[k] for k in "ecbda"]
    assert await keys(limit=2) == "ec"
    assert await keys(limit=0) == ""
    assert await keys(statuses=[TRIGGERED]) == "ebd"
    assert await keys(statuses=(TRIGGERED, ACKED)) == "ecbd"
    assert await keys(statuses={RESOLVED}) == "a"
    assert await keys(statuses=[]) == ""
    assert await keys(severities=[Severity.P0]) == "ea"
    assert await keys(severities=iter([Severity.P1, Severity.P2])) == "bd"
    assert await keys(statuses=[TRIGGERED], severities=[Severity.P0]) == "e"
    assert await keys(statuses=[TRIGGERED], severities=[Severity.P0], limit=0) == ""


# --- atomicity ---------------------------------------------------------------------------


async def test_create_is_atomic_when_the_timeline_data_is_bad(
    store: SqliteStore, db_path: Path
) -> None:
    bad = entry("opened", thing=object())  # not JSON-serializable
    with pytest.raises(TypeError, match="not JSON serializable"):
        await store.create_incident(incident(), [entry("fine"), bad])
    assert count_rows(db_path, "incidents") == 0
    assert count_rows(db_path, "timeline") == 0
    # The unique index holds no ghost: the key can be opened normally afterwards.
    created = await store.create_incident(incident(), [entry("opened")])
    assert await store.open_incident("web") == created


async def test_create_is_atomic_when_the_timeline_insert_fails(
    store: SqliteStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite_store, "_append", disk_full)
    with pytest.raises(StoreError, match="disk is full") as info:
        await store.create_incident(incident(), [entry("opened")])
    assert str(db_path) in str(info.value)
    assert count_rows(db_path, "incidents") == 0
    assert await store.list_incidents() == []


async def test_update_is_atomic(store: SqliteStore) -> None:
    created = await store.create_incident(incident(), [entry("opened")])
    acked = replace(created, status=ACKED, acknowledged_at=at(1))
    with pytest.raises(TypeError):
        await store.update_incident(acked, [entry("acknowledged"), entry("x", bad={1, 2})])
    assert await store.get_incident(created.id) == created
    assert [e.event for e in await store.timeline(created.id)] == ["opened"]


# --- silences ------------------------------------------------------------------------------


async def test_silence_round_trip(store: SqliteStore) -> None:
    original = silence(
        0,
        60,
        id=77,
        matchers={"checks": ("web-*", "api"), "tags": ("prod",), "kinds": ()},
        expired_at=at(30),
    )
    created = await store.create_silence(original)
    assert created == replace(original, id=created.id)
    assert created.id != 77
    assert await store.list_silences() == [created]
    assert (await store.list_silences())[0].matchers["checks"] == ("web-*", "api")


async def test_silences_active_and_expired(store: SqliteStore) -> None:
    early = await store.create_silence(silence(0, 10))
    late = await store.create_silence(silence(5, 60))
    cut = await store.create_silence(silence(0, 60))
    assert await store.list_silences() == [early, late, cut]

    expired = await store.expire_silence(cut.id, at(20))
    assert expired == replace(cut, expired_at=at(20))
    assert await store.expire_silence(999, at(20)) is None

    everything = await store.list_silences()
    assert everything == [early, late, expired]
    # Boundaries: starts_at is inclusive; ends_at and expired_at are exclusive.
    for minutes in (-1, 0, 4.99, 5, 9.999999, 10, 19, 20, 59, 60, 61):
        want = [s for s in everything if s.active(at(minutes))]
        assert await store.list_silences(active_at=at(minutes)) == want, minutes
    assert await store.list_silences(active_at=at(0)) == [early, expired]
    assert await store.list_silences(active_at=at(20)) == [late]


# --- check states ------------------------------------------------------------------------


async def test_check_states_round_trip_and_delete(store: SqliteStore) -> None:
    assert await store.load_check_states() == {}
    down = CheckState(AlertState.DOWN, at(3), ups=0, non_downs=0, bads=4, downs=3)
    await store.save_check_state("web", down)
    await store.save_check_state("api", CheckState())  # since None
    await store.save_check_state("npm", CheckState(AlertState.UP, at(1), 7, 7, 0, 0))
    assert await store.load_check_states() == {
        "web": down,
        "api": CheckState(),
        "npm": CheckState(AlertState.UP, at(1), 7, 7, 0, 0),
    }

    up = CheckState(AlertState.DEGRADED, at(9), ups=1, non_downs=2, bads=1, downs=0)
    await store.save_check_state("web", up)  # overwrites
    await store.delete_check_states(["api", "unknown"])
    assert await store.load_check_states() == {
        "web": up,
        "npm": CheckState(AlertState.UP, at(1), 7, 7, 0, 0),
    }
    await store.delete_check_states(iter(["web", "npm"]))
    assert await store.load_check_states() == {}


# --- the file --------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(store: SqliteStore, db_path: Path) -> None:
    created = await store.create_incident(FULL, [entry("opened", n=1)])
    made = await store.create_silence(silence(0, 10))
    await store.save_check_state("web", CheckState(AlertState.DOWN, at(1), 0, 0, 2, 2))
    await store.close()

    again = await reopened(db_path)
    try:
        assert await again.get_incident(created.id) == created
        assert await again.timeline(created.id) == [
            replace(entry("opened", n=1), incident_id=created.id)
        ]
        assert await again.list_silences() == [made]
        assert await again.load_check_states() == {
            "web": CheckState(AlertState.DOWN, at(1), 0, 0, 2, 2)
        }
        # Ids keep counting after a restart.
        assert (await again.create_incident(incident("z"), [])).id > created.id
    finally:
        await again.close()


async def test_pragmas(store: SqliteStore, db_path: Path) -> None:
    db = store._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    with closing(sqlite3.connect(db_path)) as other:  # WAL is a property of the file, too
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_fresh_file_gets_every_migration(store: SqliteStore, db_path: Path) -> None:
    assert db_path.parent.is_dir()
    assert user_version(db_path) == len(MIGRATIONS) >= 1


async def test_reopening_applies_nothing(
    store: SqliteStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_incident(incident(), [])
    await store.close()

    def no_migration(script: str) -> list[str]:
        raise AssertionError("a current schema must not be migrated")

    monkeypatch.setattr(sqlite_store, "_statements", no_migration)
    again = await reopened(db_path)
    assert user_version(db_path) == len(MIGRATIONS)
    assert len(await again.list_incidents()) == 1
    await again.close()


async def test_new_migration_is_applied_to_an_old_file(
    store: SqliteStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await store.create_incident(incident(), [])
    await store.close()

    extra = "CREATE TABLE extra (x INTEGER);\nINSERT INTO extra VALUES (1);\n"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", (*MIGRATIONS, extra))
    await (await reopened(db_path)).close()
    assert user_version(db_path) == len(MIGRATIONS) + 1
    assert count_rows(db_path, "extra") == 1
    await (await reopened(db_path)).close()  # a second open applies nothing more
    assert count_rows(db_path, "extra") == 1
    again = await reopened(db_path)
    assert await again.list_incidents() == [created]
    await again.close()


async def test_failed_migration_is_rolled_back(
    store: SqliteStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.close()
    broken = "CREATE TABLE extra (x INTEGER);\nCREATE TABLE oops (;\n"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StoreError, match=str(db_path)):
        await reopened(db_path)
    assert user_version(db_path) == len(MIGRATIONS)
    with closing(sqlite3.connect(db_path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "extra" not in tables


async def test_newer_schema_is_refused_and_left_alone(db_path: Path) -> None:
    db_path.parent.mkdir()
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("CREATE TABLE future (x INTEGER)")
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    before = db_path.read_bytes()

    s = SqliteStore(db_path)
    with pytest.raises(StoreError, match="newer than this release") as info:
        await s.open()
    assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]  # no -wal/-shm
    with pytest.raises(StoreError, match="not open"):
        await s.list_incidents()


async def test_corrupt_file_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    garbage = b"this is not a database\x00\xff" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        await SqliteStore(db_path).open()
    assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == garbage


async def test_unopenable_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        await SqliteStore(tmp_path).open()  # a directory, not a file


async def test_backup_while_open(store: SqliteStore, tmp_path: Path) -> None:
    created = await store.create_incident(FULL, [entry("opened"), entry("note", x=at(1))])
    made = await store.create_silence(silence(0, 10))
    await store.save_check_state("web", CheckState(AlertState.UP, at(1), 3, 3, 0, 0))

    dest = tmp_path / "backups" / "copy.sqlite3"
    await store.backup(dest)
    copy = await reopened(dest)
    try:
        assert await copy.list_incidents() == [created]
        assert await copy.timeline(created.id) == await store.timeline(created.id)
        assert await copy.list_silences() == [made]
        assert await copy.load_check_states() == await store.load_check_states()
        assert user_version(dest) == len(MIGRATIONS)
    finally:
        await copy.close()
    # The original is untouched and still writable.
    await store.create_incident(incident("later"), [])
    assert len(await store.list_incidents()) == 2


async def test_backup_refuses_to_overwrite_itself(store: SqliteStore, db_path: Path) -> None:
    with pytest.raises(StoreError, match="live database"):
        await store.backup(db_path)


async def test_other_constraint_failures_are_store_errors(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="NOT NULL") as info:
        await store.create_incident(incident(title=None), [])
    assert "already has" not in str(info.value)


async def test_closed_store_raises(store: SqliteStore, tmp_path: Path) -> None:
    await store.close()
    await store.close()  # idempotent
    calls = [
        store.open(),
        store.load_check_states(),
        store.save_check_state("web", CheckState()),
        store.delete_check_states(["web"]),
        store.create_incident(incident(), []),
        store.update_incident(incident(id=1), []),
        store.get_incident(1),
        store.open_incident("web"),
        store.latest_incident("web"),
        store.list_incidents(),
        store.timeline(1),
        store.create_silence(silence(0, 1)),
        store.list_silences(),
        store.expire_silence(1, at(0)),
        store.backup(tmp_path / "b.sqlite3"),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            await call


async def test_satisfies_the_protocol(store: SqliteStore) -> None:
    assert await as_store(store).list_incidents() == []


async def test_drill_flag_round_trips(tmp_path) -> None:
    from datetime import UTC, datetime

    from monitor.core.model import Incident, IncidentStatus, Severity
    from monitor.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "s.sqlite3")
    await store.open()
    now = datetime(2026, 11, 22, tzinfo=UTC)
    made = await store.create_incident(
        Incident(
            0, "drill:1", "DRILL", IncidentStatus.TRIGGERED, Severity.P1, now, now, drill=True
        ),
        [],
    )
    got = await store.get_incident(made.id)
    assert got is not None
    assert got.drill is True
    await store.close()


async def test_kv_prefix(store: SqliteStore) -> None:
    await store.kv_set("lastgood:a", "1")
    await store.kv_set("lastgood:b", "2")
    await store.kv_set("lastgoodx", "3")
    await store.kv_set("slack:lastgood:c", "4")
    assert await store.kv_prefix("lastgood:") == {"lastgood:a": "1", "lastgood:b": "2"}
    assert await store.kv_prefix("nothing:") == {}
    await store.kv_delete(["lastgood:a", "missing"])
    assert await store.kv_prefix("lastgood:") == {"lastgood:b": "2"}


async def test_pending_notifications_and_settling_them(store: SqliteStore) -> None:
    from monitor.core.model import OutboxItem, OutboxStatus

    def item(key: str, notifier: str = "slack") -> OutboxItem:
        return OutboxItem(0, key, notifier, "{}", at(0), at(0))

    await store.enqueue(
        [item("incident:1:a"), item("incident:1:b"), item("x", "pd"), item("incident:1:c")]
    )
    pending = await store.pending_notifications("slack")
    assert [i.key for i in pending] == ["incident:1:a", "incident:1:b", "incident:1:c"]
    # One transaction: the two still pending become superseded, the summary is enqueued;
    # one already sent stays sent.
    await store.update_notification(replace(pending[0], status=OutboxStatus.SENT, sent_at=at(1)))
    await store.settle_notifications(
        [p.id for p in pending[:2]], OutboxStatus.SUPERSEDED, [item("incident:1:ack")]
    )
    assert [i.key for i in await store.pending_notifications("slack")] == [
        "incident:1:c",
        "incident:1:ack",
    ]
    assert (await store.outbox_depth())[0] == 3


async def test_resolved_incidents_read_their_index_last_first(tmp_path: Path) -> None:
    """The public history reads the resolved incidents newest first from their own index
    and stops at the limit, instead of sorting every incident ever resolved."""
    store = SqliteStore(tmp_path / "monitor.sqlite3")
    await store.open()
    await store.close()
    with closing(sqlite3.connect(tmp_path / "monitor.sqlite3")) as db:
        plan = " | ".join(
            str(row[3])
            for row in db.execute(
                "EXPLAIN QUERY PLAN " + sqlite_store._RESOLVED_SINCE,
                {"since": "2026", "sources": None, "severities": None, "limit": 10},
            )
        )
    assert "USING INDEX incidents_resolved" in plan
    assert "TEMP B-TREE" not in plan
