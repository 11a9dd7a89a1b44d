"""One contract for every `Store` implementation: what the daemon relies on, whatever keeps
it. Each implementation is one param of the `store` fixture (memory and SQLite today; a
networked backend joins by adding its factory to `BACKENDS`). File-level behaviour of one
backend (WAL, migrations, corrupt files) stays in its own tests (`tests/test_store.py`)."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import (
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
from monitor.store import Store, StoreError
from monitor.store.base import (
    HOUR,
    HOUR_RETENTION_S,
    LATENCY_BOUNDS_MS,
    MINUTE,
    MINUTE_RETENTION_S,
    HistoryBucket,
    RunCounts,
)
from monitor.store.sqlite import SqliteStore
from tests.fakes import MemoryStore

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
TRIGGERED, ACKED, RESOLVED = (
    IncidentStatus.TRIGGERED,
    IncidentStatus.ACKNOWLEDGED,
    IncidentStatus.RESOLVED,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "state" / "monitor.sqlite3")


def _memory(tmp_path: Path) -> Store:
    return MemoryStore()


# name → a factory of a fresh, unopened store.
BACKENDS: dict[str, Callable[[Path], Store]] = {"memory": _memory, "sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = BACKENDS[request.param](tmp_path)
    await s.open()
    yield s
    await s.close()


def incident(key: str = "web", minutes: float = 0, **changes: object) -> Incident:
    base = Incident(
        id=0, key=key, title=f"{key} is down", status=TRIGGERED, severity=Severity.P1,
        opened_at=at(minutes), updated_at=at(minutes), check=key,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]  # fields by name


def entry(event: str, minutes: float = 0, **data: object) -> TimelineEntry:
    return TimelineEntry(0, at(minutes), event, "monitor", f"{event} text", data)


def item(key: str, notifier: str = "slack", minutes: float = 0, **changes: object) -> OutboxItem:
    base = OutboxItem(
        id=0, key=key, notifier=notifier, payload=f'{{"k": "{key}"}}',
        created_at=at(minutes), next_attempt_at=at(minutes),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]  # fields by name


def silence(start: float, end: float) -> Silence:
    return Silence(
        id=0, matchers={"checks": ("web-*",), "tags": ("docs",)}, starts_at=at(start),
        ends_at=at(end), author="ana", comment="deploy", created_at=at(start - 1),
    )  # fmt: skip


def test_every_protocol_method_is_in_the_contract() -> None:
    methods = {n for n, _ in inspect.getmembers(Store, inspect.isfunction) if not n.startswith("_")}
    source = Path(__file__).read_text()
    used = set(re.findall(r"\bs(?:tore)?\.(\w+)\(", source))
    assert methods - used == set()


async def test_check_states_round_trip_and_are_deleted(store: Store) -> None:
    assert await store.load_check_states() == {}
    up = CheckState(AlertState.UP, at(1), ups=3, non_downs=3)
    blind = CheckState(
        AlertState.BLIND, at(2), blinds=2, seen=AlertState.DOWN, seen_since=at(0),
        cause="monitor-health:rate_limited:api.github.com",
    )  # fmt: skip
    await store.save_check_state("web", up)
    await store.save_check_state("gha", blind)
    await store.save_check_state("web", replace(up, ups=4))  # replaces
    assert await store.load_check_states() == {"web": replace(up, ups=4), "gha": blind}
    await store.delete_check_states(["web", "missing"])
    assert await store.load_check_states() == {"gha": blind}


async def test_incidents_get_ids_and_round_trip(store: Store) -> None:
    full = incident(
        "npm", 1, source=IncidentSource.MANUAL, assignee="ana", rule="npm", failure="deprecated",
        message="deprecated", suppressed="maintenance 'deploy'", report_url="https://x/1",
        auto_resolve=False, reopened=2, drill=True,
        last_good={"at": at(0).isoformat(), "values": {"version": "1"}, "text": "t",
                   "command": None, "url": None},
    )  # fmt: skip
    a = await store.create_incident(full, [entry("opened", 1, severity="P1")])
    b = await store.create_incident(incident("web", 2), [])
    assert a.id > 0
    assert b.id not in (0, a.id)
    assert await store.get_incident(a.id) == replace(full, id=a.id)
    assert await store.get_incident(b.id + a.id + 100) is None
    [opened] = await store.timeline(a.id)
    assert (opened.incident_id, opened.event, opened.at, dict(opened.data)) == (
        a.id, "opened", at(1), {"severity": "P1"},
    )  # fmt: skip
    assert (opened.count, opened.last_at) == (1, None)
    assert await store.timeline(b.id) == []


async def test_one_open_incident_per_key(store: Store) -> None:
    first = await store.create_incident(incident("web"), [])
    with pytest.raises(StoreError):
        await store.create_incident(incident("web", 1), [])
    assert [i.id for i in await store.list_incidents()] == [first.id]
    assert await store.open_incident("web") == first
    # Resolved, the key is free again; the resolved one cannot be reopened beside it.
    await store.update_incident(replace(first, status=RESOLVED, resolved_at=at(2)), [])
    assert await store.open_incident("web") is None
    second = await store.create_incident(incident("web", 3), [])
    assert await store.open_incident("web") == second
    with pytest.raises(StoreError):
        await store.update_incident(replace(first, status=TRIGGERED, resolved_at=None), [])
    assert (await store.get_incident(first.id)) == replace(
        first, status=RESOLVED, resolved_at=at(2)
    )


async def test_updates_replace_the_row_and_append_to_the_timeline(store: Store) -> None:
    a = await store.create_incident(incident("web"), [entry("opened")])
    acked = replace(a, status=ACKED, acknowledged_at=at(5), assignee="ana", updated_at=at(5))
    await store.update_incident(acked, [replace(entry("acknowledged", 5), incident_id=999)])
    assert await store.get_incident(a.id) == acked
    assert await store.open_incident("web") == acked  # acknowledged is still open
    events = [(e.incident_id, e.event) for e in await store.timeline(a.id)]
    assert events == [(a.id, "opened"), (a.id, "acknowledged")]  # oldest first
    with pytest.raises(StoreError):
        await store.update_incident(replace(a, id=a.id + 1000), [])


async def test_latest_and_listing(store: Store) -> None:
    old = await store.create_incident(incident("web", 0), [])
    await store.update_incident(replace(old, status=RESOLVED, resolved_at=at(1)), [])
    new = await store.create_incident(incident("web", 10), [])
    p0 = await store.create_incident(incident("npm", 5, severity=Severity.P0), [])
    untriaged = await store.create_incident(incident("docs", 7, severity=None), [])
    assert await store.latest_incident("web") == new
    assert await store.latest_incident("none") is None
    listed = [i.id for i in await store.list_incidents()]
    assert listed == [new.id, untriaged.id, p0.id, old.id]  # newest first
    assert [i.id for i in await store.list_incidents(limit=2)] == [new.id, untriaged.id]
    assert [i.id for i in await store.list_incidents(statuses=[RESOLVED])] == [old.id]
    by_severity = await store.list_incidents(severities=[Severity.P0, Severity.P1])
    assert [i.id for i in by_severity] == [new.id, p0.id, old.id]
    both = await store.list_incidents(statuses=[TRIGGERED], severities=[Severity.P1])
    assert [i.id for i in both] == [new.id]


async def test_public_notes_round_trip(store: Store) -> None:
    a = await store.create_incident(incident("web", public_note="We are looking into it."), [])
    assert (await store.get_incident(a.id)) == a
    assert a.public_note == "We are looking into it."
    noted = replace(a, public_note="Fixed: the CDN's certificate was renewed. <&> ünïcode")
    await store.update_incident(noted, [entry("public_note", 1)])
    assert await store.get_incident(a.id) == noted
    assert await store.open_incident("web") == noted
    await store.update_incident(replace(noted, public_note=None), [])
    got = await store.get_incident(a.id)
    assert got is not None
    assert got.public_note is None


async def test_resolved_incidents_since_a_time(store: Store) -> None:
    def done(key: str, opened: float, resolved: float, **changes: object) -> Incident:
        return incident(key, opened, status=RESOLVED, resolved_at=at(resolved), **changes)

    old = await store.create_incident(done("a", 0, 5), [])
    mid = await store.create_incident(done("b", 1, 20, public_note="note"), [])
    late = await store.create_incident(done("c", 2, 30), [])
    same = await store.create_incident(done("d", 3, 30), [])  # the same time: by id
    drill = await store.create_incident(done("e", 4, 25, source=IncidentSource.DRILL), [])
    untriaged = await store.create_incident(done("g", 4, 22, severity=None), [])
    await store.create_incident(incident("f", 6), [])  # open: never listed
    found = await store.resolved_incidents(at(10))
    assert [i.id for i in found] == [same.id, late.id, drill.id, untriaged.id, mid.id]
    assert found[-1] == mid  # whole rows, the note with them
    assert [i.id for i in await store.resolved_incidents(at(20), limit=2)] == [same.id, late.id]
    checks = await store.resolved_incidents(at(0), sources=[IncidentSource.CHECK])
    assert [i.id for i in checks] == [same.id, late.id, untriaged.id, mid.id, old.id]
    triaged = await store.resolved_incidents(
        at(0), sources=[IncidentSource.CHECK], severities=list(Severity), limit=4
    )
    assert [i.id for i in triaged] == [same.id, late.id, mid.id, old.id]
    p0 = await store.resolved_incidents(at(0), severities=[Severity.P0])
    assert p0 == []
    assert await store.resolved_incidents(at(31)) == []
    assert await store.resolved_incidents(at(0), sources=[]) == []
    assert await store.resolved_incidents(at(0), limit=0) == []


async def test_repeat_counts_the_latest_entry_among_events(store: Store) -> None:
    a = await store.create_incident(incident(), [entry("opened"), entry("failure", 1)])
    await store.update_incident(a, [entry("failure", 2), entry("note", 3)])
    repeated = await store.repeat_entry(a.id, ["failure", "other"], at(4))
    assert repeated is not None
    assert (repeated.event, repeated.at, repeated.count, repeated.last_at) == (
        "failure", at(2), 2, at(4),
    )  # fmt: skip
    assert await store.repeat_entry(a.id, ["resolved"], at(5)) is None
    timeline = await store.timeline(a.id)
    assert [(e.event, e.count) for e in timeline] == [
        ("opened", 1), ("failure", 1), ("failure", 2), ("note", 1),
    ]  # fmt: skip
    assert timeline[2] == repeated


async def test_silences_are_listed_active_and_expire(store: Store) -> None:
    now_on = await store.create_silence(silence(0, 60))
    later = await store.create_silence(silence(120, 180))
    assert now_on.id > 0
    assert later.id != now_on.id
    assert now_on == replace(silence(0, 60), id=now_on.id)
    assert {s.id for s in await store.list_silences()} == {now_on.id, later.id}
    assert [s.id for s in await store.list_silences(active_at=at(30))] == [now_on.id]
    expired = await store.expire_silence(now_on.id, at(10))
    assert expired == replace(now_on, expired_at=at(10))
    assert await store.list_silences(active_at=at(30)) == []
    assert await store.expire_silence(later.id + now_on.id + 100, at(10)) is None


def escalation(incident_id: int, step: int = 0) -> EscalationState:
    return EscalationState(incident_id, '{"steps": []}', step, 0, at(step))


async def test_escalations_commit_with_their_pages_once(store: Store) -> None:
    a = await store.create_incident(incident("web"), [])
    b = await store.create_incident(incident("npm"), [])
    await store.commit_escalation(b.id, escalation(b.id), [item("b:0")])
    await store.commit_escalation(a.id, escalation(a.id), [item("a:0"), item("a:0:pd", "pd")])
    await store.commit_escalation(a.id, escalation(a.id, 1), [item("a:0")])  # run again
    assert await store.load_escalations() == [escalation(a.id, 1), escalation(b.id)]
    assert [i.key for i in await store.pending_notifications("slack")] == ["b:0", "a:0"]
    await store.commit_escalation(b.id, None, [])
    assert await store.load_escalations() == [escalation(a.id, 1)]


async def test_escalations_swap_only_from_what_is_stored(store: Store) -> None:
    a = await store.create_incident(incident("web"), [])
    token = await store.acquire_lease("replica-a")
    assert token is not None
    # Start: only where none runs yet.
    assert await store.swap_escalation(a.id, None, escalation(a.id), [], None)
    assert not await store.swap_escalation(a.id, None, escalation(a.id, 3), [item("x")], None)
    # Advance: only from the position stored, with its pages in the same transaction.
    assert await store.swap_escalation(
        a.id, escalation(a.id), escalation(a.id, 1), [item("a:0")], token
    )
    assert not await store.swap_escalation(
        a.id, escalation(a.id), escalation(a.id, 2), [item("a:stale")], token
    )
    assert await store.load_escalations() == [escalation(a.id, 1)]
    assert [i.key for i in await store.pending_notifications("slack")] == ["a:0"]
    # Ended elsewhere (acknowledged on another replica): an advance writes nothing.
    await store.commit_escalation(a.id, None, [])
    assert not await store.swap_escalation(
        a.id, escalation(a.id, 1), escalation(a.id, 2), [item("a:1")], token
    )
    assert await store.load_escalations() == []
    assert [i.key for i in await store.pending_notifications("slack")] == ["a:0"]
    # The end of an escalation deletes it.
    assert await store.swap_escalation(a.id, None, escalation(a.id, 4), [], token)
    assert await store.swap_escalation(a.id, escalation(a.id, 4), None, [item("last")], token)
    assert await store.load_escalations() == []
    assert [i.key for i in await store.pending_notifications("slack")] == ["a:0", "last"]


async def test_a_deposed_token_is_fenced_out_of_claims_and_escalations(store: Store) -> None:
    a = await store.create_incident(incident("web"), [])
    first = await store.acquire_lease("replica-a")
    assert first is not None
    assert await store.renew_lease()
    await store.enqueue([item("k1"), item("k2"), item("k3", "pd")])
    k1, k2 = await store.pending_notifications("slack")
    assert await store.claim_notifications([k1.id, k2.id, k2.id], first) == [k1.id, k2.id]
    await store.update_notification(replace(k1, status=OutboxStatus.SENT, sent_at=at(1)))
    assert await store.claim_notifications([k1.id, k2.id], first) == [k2.id]  # sent: not again
    await store.release_lease()
    assert not await store.renew_lease()
    assert await store.claim_notifications([k2.id], first) is None  # released: fenced
    second = await store.acquire_lease("replica-b")
    assert second is not None
    assert second > first
    # The old token can neither send nor advance; the new one can, and claims again what
    # the deposed holder claimed but never marked sent (same key: a crash's re-send).
    assert await store.claim_notifications([k2.id], first) is None
    await store.commit_escalation(a.id, escalation(a.id), [])
    assert not await store.swap_escalation(a.id, escalation(a.id), None, [item("z")], first)
    assert await store.claim_notifications([k2.id], second) == [k2.id]
    assert await store.swap_escalation(a.id, escalation(a.id), None, [item("z")], second)
    assert await store.renew_lease()
    told = await store.database_now()  # the server's clock, or none of its own
    assert told is None or abs(told - datetime.now(UTC)) < timedelta(seconds=5)
    await store.notify_change("replica-b")  # told to nobody else: no error
    assert not await store.wait_changes(0.01, "replica-b")
    await store.release_lease()


async def test_an_escalation_starts_with_its_first_pages_in_order(store: Store) -> None:
    a = await store.create_incident(incident("web"), [])
    first = [item("a:p0s0", minutes=1), item("a:p0s1:pd", "pd", 1), item("a:p0s1", minutes=1)]
    assert await store.swap_escalation(a.id, None, escalation(a.id, 2), first, None)
    assert not await store.swap_escalation(a.id, None, escalation(a.id), [item("a:x")], None)
    assert await store.load_escalations() == [escalation(a.id, 2)]
    assert [i.key for i in await store.pending_notifications("slack")] == ["a:p0s0", "a:p0s1"]
    [page] = await store.pending_notifications("pd")
    assert (page.payload, page.created_at, page.attempts) == ('{"k": "a:p0s1:pd"}', at(1), 0)


async def test_due_heads_are_claimed_in_one_call_under_the_token(store: Store) -> None:
    first = await store.acquire_lease("replica-a")
    assert first is not None
    await store.enqueue([
        item("incident:7:p0s0:slack"), item("incident:7:p0s1:slack"),  # one incident's line
        item("incident:8:p0s0:slack", minutes=5),  # not due before 5
        item("handoff:1"), item("incident:9:p0s0:pd", "pd"),
    ])  # fmt: skip
    claimed = await store.claim_due("slack", at(1), first, 10)
    assert claimed is not None
    assert [i.key for i in claimed] == ["incident:7:p0s0:slack", "handoff:1"]
    assert claimed[0].payload == '{"k": "incident:7:p0s0:slack"}'
    assert [i.key for i in await store.claim_due("slack", at(1), first, 1) or []] == [
        "incident:7:p0s0:slack"
    ]  # claimed, never sent: claimed again (a crash's re-send, same key)
    await store.update_notification(replace(claimed[0], status=OutboxStatus.SENT, sent_at=at(1)))
    later = await store.claim_due("slack", at(6), first, 10)
    assert [i.key for i in later or []] == [
        "incident:7:p0s1:slack", "incident:8:p0s0:slack", "handoff:1"
    ]  # fmt: skip
    assert await store.claim_due("slack", at(0), first, 0) == []
    await store.release_lease()
    assert await store.claim_due("slack", at(6), first, 10) is None  # released: fenced
    second = await store.acquire_lease("replica-b")
    assert second is not None
    assert await store.claim_due("slack", at(6), first, 10) is None  # deposed
    assert [i.key for i in await store.claim_due("pd", at(6), second, 10) or []] == [
        "incident:9:p0s0:pd"
    ]
    await store.release_lease()


async def test_the_outbox_queue(store: Store) -> None:
    await store.enqueue([item("k1", minutes=5), item("k2", minutes=1), item("k3", "pd", 0)])
    await store.enqueue([item("k1", minutes=9)])  # a key already there: skipped
    assert await store.outbox_depth() == (3, at(0))
    due = await store.due_notifications("slack", at(6), 10)
    assert [(i.key, i.next_attempt_at, i.status) for i in due] == [
        ("k2", at(1), OutboxStatus.PENDING), ("k1", at(5), OutboxStatus.PENDING),
    ]  # fmt: skip
    assert all(i.id > 0 for i in due)
    assert [i.key for i in await store.due_notifications("slack", at(2), 10)] == ["k2"]
    assert [i.key for i in await store.due_notifications("slack", at(6), 1)] == ["k2"]
    assert await store.next_notification_at("slack") == at(1)
    assert await store.next_notification_at("email") is None
    assert [i.key for i in await store.pending_notifications("slack")] == ["k1", "k2"]
    k2 = due[0]
    retried = replace(k2, attempts=1, next_attempt_at=at(30), last_error="HTTP 503")
    await store.update_notification(retried)
    assert await store.next_notification_at("slack") == at(5)
    [k1] = await store.due_notifications("slack", at(6), 10)
    sent = replace(k1, attempts=1, status=OutboxStatus.SENT, sent_at=at(6))
    await store.update_notification(sent)
    assert await store.pending_notifications("slack") == [retried]
    assert await store.outbox_depth() == (2, at(0))
    assert await store.due_notifications("slack", at(60), 10) == [retried]


async def test_settling_supersedes_only_pending_and_enqueues(store: Store) -> None:
    await store.enqueue([item("page-1"), item("page-2"), item("done")])
    page1, _, done = await store.pending_notifications("slack")
    await store.update_notification(replace(done, status=OutboxStatus.SENT, sent_at=at(1)))
    await store.settle_notifications(
        [page1.id, done.id], OutboxStatus.SUPERSEDED, [item("ack"), item("page-2")]
    )
    assert [i.key for i in await store.pending_notifications("slack")] == ["page-2", "ack"]
    assert await store.outbox_depth() == (2, at(0))


async def test_the_key_value_space(store: Store) -> None:
    assert await store.kv_get("slack:thread:1") is None
    await store.kv_set("lastgood:a", "1")
    await store.kv_set("lastgood:b", "2")
    await store.kv_set("lastgoodx", "3")
    await store.kv_set("lastgood:a", "4")  # replaces
    assert await store.kv_get("lastgood:a") == "4"
    assert await store.kv_prefix("lastgood:") == {"lastgood:a": "4", "lastgood:b": "2"}
    await store.kv_delete(["lastgood:a", "missing"])
    assert await store.kv_prefix("lastgood:") == {"lastgood:b": "2"}
    assert await store.kv_prefix("%") == {}  # a prefix is text, not a pattern


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.load_check_states(),
        lambda s: s.get_incident(1),
        lambda s: s.create_incident(incident(), []),
        lambda s: s.kv_set("k", "v"),
        lambda s: s.enqueue([item("k")]),
    ],
    ids=["load_check_states", "get_incident", "create_incident", "kv_set", "enqueue"],
)
async def test_a_closed_store_refuses_to_be_used(
    store: Store, use: Callable[[Store], Awaitable[object]]
) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await use(store)


# --- run history ---------------------------------------------------------------------

H0 = int(T0.timestamp()) - int(T0.timestamp()) % HOUR  # an hour boundary


def minute(
    check: str, offset_s: int, *, up: int = 0, down: int = 0, blind: int = 0, ms: float = 0
) -> HistoryBucket:
    seen = up + down
    latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    latency[sum(ms > b for b in LATENCY_BOUNDS_MS)] = seen
    return HistoryBucket(
        check, MINUTE, H0 + offset_s, up=up, down=down, blind=blind, sum_ms=ms * seen,
        max_ms=ms if seen else 0.0, latency=tuple(latency),
    )  # fmt: skip


async def test_history_adds_minutes_and_derives_hours(store: Store) -> None:
    await store.add_history([minute("web", 0, up=3, ms=80), minute("web", 60, down=1, ms=3000)])
    # The same minute again (a second flush, or after a restart): counts add up.
    await store.add_history([minute("web", 0, up=1, blind=2, ms=300), minute("api", 0, up=1)])
    minutes = await store.read_history("web", MINUTE, H0, H0 + HOUR)
    assert [(b.start, b.up, b.down, b.blind) for b in minutes] == [
        (H0, 4, 0, 2), (H0 + 60, 0, 1, 0),
    ]  # fmt: skip
    first = minutes[0]
    assert first.sum_ms == pytest.approx(3 * 80 + 300)
    assert first.max_ms == pytest.approx(300)
    assert first.latency[:3] == (3, 0, 1)
    assert sum(first.latency) == 4
    [hour] = await store.read_history("web", HOUR, H0 - HOUR, H0 + 2 * HOUR)
    assert (hour.start, hour.runs, hour.up, hour.down, hour.blind) == (H0, 7, 4, 1, 2)
    assert hour.max_ms == pytest.approx(3000)
    assert sum(hour.latency) == 5
    assert [b.check for b in await store.read_history("api", HOUR, H0, H0 + HOUR)] == ["api"]
    # The window is half-open and per resolution.
    assert await store.read_history("web", MINUTE, H0 + 61, H0 + HOUR) == []


async def test_history_keeps_any_check_name_and_exact_sums(store: Store) -> None:
    """Names with quotes, backslashes and other scripts, and sums that are not round."""
    odd = 'we"b\\ \u00e9\u6f22 \U0001f600'
    await store.add_history([minute(odd, 0, up=1, ms=0.1), minute(odd, 0, up=1, ms=0.2)])
    [bucket] = await store.read_history(odd, MINUTE, H0, H0 + 60)
    assert (bucket.check, bucket.up, bucket.sum_ms, bucket.max_ms) == (odd, 2, 0.1 + 0.2, 0.2)
    assert sum(bucket.latency) == 2


async def test_run_counts_sum_the_checks_over_a_range(store: Store) -> None:
    await store.add_history([
        minute("web", 0, up=3, blind=1), minute("web", HOUR, down=2), minute("api", 60, up=5),
        minute("docs", 0, up=7),
    ])  # fmt: skip
    assert await store.count_runs(["web", "api"], HOUR, H0, H0 + 2 * HOUR) == RunCounts(
        up=8, down=2, blind=1
    )
    assert await store.count_runs(["web"], HOUR, H0 + 1, H0 + 2 * HOUR) == RunCounts(down=2)
    assert await store.count_runs(["web"], MINUTE, H0, H0 + 60) == RunCounts(up=3, blind=1)
    assert await store.count_runs(["nope"], HOUR, 0, H0 + 9 * HOUR) == RunCounts()
    assert await store.count_runs([], HOUR, 0, H0 + 9 * HOUR) == RunCounts()


async def test_history_totals_add_hours_up_per_period(store: Store) -> None:
    day = 24 * HOUR
    d0 = H0 - H0 % day  # a UTC day
    await store.add_history([
        minute("web", d0 - H0 - HOUR, up=2, ms=80),  # the day before, 23:00
        minute("web", d0 - H0, up=3, ms=80), minute("web", d0 - H0 + 5 * HOUR, down=1, ms=3000),
        minute("web", d0 - H0 + 5 * HOUR + 60, blind=4), minute("api", d0 - H0, up=9),
    ])  # fmt: skip
    totals = await store.read_history_totals("web", day, d0 - day, d0 + day)
    assert [(b.start, b.resolution, b.up, b.down, b.blind) for b in totals] == [
        (d0 - day, day, 2, 0, 0), (d0, day, 3, 1, 4),
    ]  # fmt: skip
    assert totals[1].max_ms == pytest.approx(3000)
    assert totals[1].sum_ms == pytest.approx(3 * 80 + 3000)
    assert totals[1].latency == (3, 0, 0, 0, 0, 1, 0, 0)
    assert {b.check for b in totals} == {"web"}
    # Only hour rows in [since, until) count.
    [late] = await store.read_history_totals("web", day, d0 + HOUR, d0 + day)
    assert (late.start, late.runs) == (d0, 5)
    assert await store.read_history_totals("web", day, d0 + day, d0 + 2 * day) == []


async def test_history_of_many_checks_is_each_checks_own_in_one_call(store: Store) -> None:
    day = 24 * HOUR
    d0 = H0 - H0 % day
    await store.add_history([
        minute("web", 0, up=3, ms=80), minute("web", HOUR, down=1), minute("api", 60, up=5),
        minute("docs", 0, up=7), minute("api", d0 - H0 - HOUR, up=2),
    ])  # fmt: skip
    names = ["web", "api", "nope", "web"]
    hours = await store.read_history_of(names, HOUR, H0 - day, H0 + 2 * HOUR)
    assert set(hours) == {"web", "api"}  # none for "nope", "docs" not asked
    for check in ("web", "api"):
        assert hours[check] == await store.read_history(check, HOUR, H0 - day, H0 + 2 * HOUR)
    assert [b.start for b in hours["web"]] == [H0, H0 + HOUR]  # oldest first
    totals = await store.read_history_totals_of(names, day, d0 - day, d0 + day)
    assert set(totals) == {"web", "api"}
    for check in ("web", "api"):
        assert totals[check] == await store.read_history_totals(check, day, d0 - day, d0 + day)
    assert await store.read_history_of([], HOUR, 0, H0 + day) == {}
    assert await store.read_history_totals_of(["nope"], day, 0, H0 + day) == {}


async def test_history_retention_and_deletion(store: Store) -> None:
    old_minute = -MINUTE_RETENTION_S - HOUR
    old_hour = -HOUR_RETENTION_S - HOUR
    await store.add_history([minute("web", old_hour, up=1), minute("web", old_minute, up=1),
                             minute("web", 0, up=1), minute("db", 0, up=1)])  # fmt: skip
    await store.prune_history(H0 + 60)
    minutes = await store.read_history("web", MINUTE, 0, H0 + HOUR)
    hours = await store.read_history("web", HOUR, 0, H0 + HOUR)
    assert [b.start for b in minutes] == [H0]
    assert [b.start for b in hours] == [H0 + old_minute, H0]
    await store.delete_history(["web"])
    assert await store.read_history("web", HOUR, 0, H0 + HOUR) == []
    assert len(await store.read_history("db", MINUTE, 0, H0 + HOUR)) == 1
    await store.add_history([])  # nothing to write is no error
