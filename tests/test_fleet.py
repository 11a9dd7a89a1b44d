"""Check ownership, with the FakeClock and a replica book in memory whose clock is the
database's: the ownership function (stable, balanced, minimal movement), handovers and
takeovers, a replica cut off from the store, the config hash, and the incident for a
replica that is gone. Also: a transition the store did not take is written once it is
back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.checks.http.check import HttpCheckConfig
from monitor.config.loader import parse_config
from monitor.core.configtypes import CheckConfigBase, Defaults
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, IncidentStatus, Outcome
from monitor.engine.fleet import (
    SETTLE_BEATS,
    TAKEOVER_SPREAD_S,
    Fleet,
    config_hash,
    gone_key,
    owner,
    owners,
)
from monitor.engine.membership import Membership
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule
from monitor.metrics.exporter import Metrics
from monitor.store.postgres import PostgresStore
from monitor.store.replicas import Replica, ReplicaId, RunBook
from tests.fakes import FakeClock, MemoryStore

BEAT, TTL = 1.0, 5.0
NAMES = [f"check-{i}" for i in range(3000)]


# --- the ownership function -------------------------------------------------------


def test_ownership_is_stable_whatever_the_order_of_the_live_set() -> None:
    live = ["h1:1:aa", "h2:1:bb", "h3:1:cc"]
    first = owners(NAMES, live)
    assert owners(NAMES, list(reversed(live))) == first
    assert owners(NAMES, live) == first
    assert set(first) == set(NAMES)  # every check has exactly one owner
    assert owner("x", []) is None


def test_ownership_is_balanced() -> None:
    live = ["h1:1:aa", "h2:1:bb", "h3:1:cc"]
    counts = dict.fromkeys(live, 0)
    for o in owners(NAMES, live).values():
        counts[o] += 1
    assert all(900 <= n <= 1100 for n in counts.values()), counts


def test_a_join_or_a_departure_moves_only_the_checks_it_must() -> None:
    live = ["h1:1:aa", "h2:1:bb", "h3:1:cc"]
    before = owners(NAMES, live)
    joined = owners(NAMES, [*live, "h4:1:dd"])
    moved = {n for n in NAMES if joined[n] != before[n]}
    assert all(joined[n] == "h4:1:dd" for n in moved)  # only to the newcomer
    assert 600 <= len(moved) <= 900  # about a quarter
    left = owners(NAMES, ["h1:1:aa", "h3:1:cc"])
    moved = {n for n in NAMES if left[n] != before[n]}
    assert moved == {n for n in NAMES if before[n] == "h2:1:bb"}  # only the leaver's


# --- a fleet in memory ------------------------------------------------------------


class Database:
    """The replicas table and the last runs, timed by one clock: the database's."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.seen: dict[str, tuple[ReplicaId, float]] = {}
        self.runs: dict[str, float] = {}
        self.runners: dict[str, str] = {}  # who recorded each check's last run
        self.down: set[str] = set()  # replicas that cannot reach it
        self.readings: dict[str, tuple[str, str]] = {}  # check → (replica, reading)
        self.beats: list[tuple[str, int, int, float | None]] = []  # id, runs, readings, claim


class Book:
    """One replica's connection to the `Database`."""

    def __init__(self, db: Database, me: str) -> None:
        self.db, self.me = db, me

    def _reach(self) -> None:
        if self.me in self.db.down:
            raise StoreError("postgresql://db/monitor: connection refused")

    def _now(self) -> float:
        return self.db.clock.monotonic()

    async def beat_replica(self, replica: ReplicaId) -> list[Replica]:
        self._reach()
        self.db.seen[replica.id] = (replica, self._now())
        return [
            Replica(r.id, r.host, r.pid, r.version, self._now() - at, r.config_hash)
            for r, at in sorted(self.db.seen.values(), key=lambda x: x[0].id)
            if self._now() - at < replica.ttl_s
        ]

    async def leave_replica(self, replica_id: str) -> None:
        self._reach()
        self.db.seen.pop(replica_id, None)

    async def record_runs(self, replica_id: str, runs: Sequence[tuple[str, float]]) -> None:
        self._reach()
        for name, age in runs:
            if self._now() - age > self.db.runs.get(name, -1e9):
                self.db.runs[name] = self._now() - age
                self.db.runners[name] = replica_id

    async def last_runs(self, checks: Sequence[str]) -> dict[str, float]:
        self._reach()
        return {c: self._now() - self.db.runs[c] for c in checks if c in self.db.runs}

    async def last_runners(self, checks: Sequence[str]) -> dict[str, tuple[float, str]]:
        ages = await self.last_runs(checks)
        return {c: (age, self.db.runners.get(c, "?")) for c, age in ages.items()}

    def _claim_gone(self, ttl_s: float) -> list[Replica]:
        gone = [(r, at) for r, at in self.db.seen.values() if self._now() - at >= ttl_s]
        for r, _ in gone:
            del self.db.seen[r.id]
        return [Replica(r.id, r.host, r.pid, r.version, self._now() - at) for r, at in gone]

    async def beat_and_record(
        self,
        replica: ReplicaId,
        runs: Sequence[tuple[str, float]],
        readings: Sequence[tuple[str, str]],
        gone_after_s: float | None,
    ) -> tuple[list[Replica], list[Replica]]:
        """All or nothing, as the one statement is."""
        self._reach()
        self.db.beats.append((replica.id, len(runs), len(readings), gone_after_s))
        gone = []
        if gone_after_s is not None:
            mine = self.db.seen.pop(replica.id, None)
            gone = self._claim_gone(gone_after_s)
            if mine is not None:
                self.db.seen[replica.id] = mine
        await self.record_runs(replica.id, runs)
        self.db.readings.update((c, (replica.id, text)) for c, text in readings)
        live = await self.beat_replica(replica)
        return [r for r in live if r.id not in {g.id for g in gone}], gone


class Plans:
    """Stands in for the scheduler: the runs the fleet planned, and how often it said
    ownership moved (the checks it keeps back ask the gate again only then)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.moved = 0

    def reschedule(self, name: str, first_at: float, steady_at: float) -> None:
        self.at[name] = first_at

    def ownership_moved(self) -> None:
        self.moved += 1


def checks(n: int = 30, interval: str = "10s") -> list[CheckConfigBase]:
    return [
        HttpCheckConfig(name=f"c{i}", kind="http", url="http://x", interval=interval).resolved(
            Defaults()
        )
        for i in range(n)
    ]


def replica_of(db: Database, name: str, configs: list[CheckConfigBase], **kw: object) -> Fleet:
    me = ReplicaId(f"{name}:1:{name}", name, 1, "1.0", TTL, str(kw.pop("hash", "h")))
    book = Book(db, me.id)
    registry = kw.pop("registry", None) or CollectorRegistry()
    membership = Membership(book, me, db.clock, Metrics(registry), beat_s=BEAT)  # type: ignore[arg-type]
    fleet = Fleet(membership, book, db.clock, membership.metrics, lambda: configs, ttl_s=TTL,
                  **kw)  # type: ignore[arg-type]  # fmt: skip
    fleet.attach(Plans())  # type: ignore[arg-type]
    return fleet


def plans(fleet: Fleet) -> dict[str, float]:
    return plans_of(fleet).at


def owned(fleet: Fleet, configs: list[CheckConfigBase]) -> set[str]:
    """The checks `fleet` runs as their owner (writing and paging)."""
    return {c.name for c in configs if fleet.owns(c.name) and not fleet.orphaned(c.name)}


def orphans(fleet: Fleet, configs: list[CheckConfigBase]) -> set[str]:
    """The checks `fleet` probes on its own, keeping the results local."""
    return {c.name for c in configs if fleet.owns(c.name) and fleet.orphaned(c.name)}


def running(fleet: Fleet) -> set[str]:
    """The checks the gate lets run on `fleet` now."""
    return {c.name for c in fleet.checks() if fleet.owns(c.name)}


async def beat(clock: FakeClock, *fleets: Fleet) -> None:
    """A step of each; and in every test, a step after which the gate lets a check run
    that it kept back has told the scheduler (else that check would wait for ever)."""
    for f in fleets:
        before, told = running(f), plans_of(f).moved
        await f.step(clock.monotonic())
        if running(f) - before:
            assert plans_of(f).moved == told + 1, "ownership moved, the scheduler not told"


def plans_of(fleet: Fleet) -> Plans:
    scheduler: object = fleet.scheduler
    assert isinstance(scheduler, Plans)
    return scheduler


async def test_a_joining_replica_waits_for_the_other_to_let_go_then_continues_its_phase(
    clock: FakeClock,
) -> None:
    db, configs = Database(clock), checks()
    a = replica_of(db, "a", configs)
    await beat(clock, a)
    assert owned(a, configs) == {c.name for c in configs}  # alone: everything
    for c in configs:  # a ran each check 3 s ago
        db.runs[c.name] = clock.monotonic() - 3
    await clock.advance(BEAT)
    b = replica_of(db, "b", configs)
    await beat(clock, b)
    theirs = {n for n, o in owners([c.name for c in configs], [a.membership.me.id, b.membership.me.id]).items() if o == b.membership.me.id}  # fmt: skip
    assert theirs
    assert owned(b, configs) == set()  # b waits: a still runs them until its next beat
    assert "owns_nothing" in b.detail()
    await beat(clock, a)  # a sees b and lets them go at once
    assert owned(a, configs) == {c.name for c in configs} - theirs
    for _ in range(SETTLE_BEATS):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    assert owned(b, configs) == theirs
    # Each continues where a left it: due 10 s after a's last run (the database's time).
    for name in theirs:
        assert plans(b)[name] == pytest.approx(db.runs[name] + 10.0)
    # Steady beats move nothing: the checks kept back are not woken for nothing.
    told = plans_of(a).moved, plans_of(b).moved
    for _ in range(5):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    assert (plans_of(a).moved, plans_of(b).moved) == told


async def test_a_gone_replica_s_checks_run_at_once_when_overdue_else_at_their_phase(
    clock: FakeClock,
) -> None:
    db, configs = Database(clock), checks()
    a, b = replica_of(db, "a", configs), replica_of(db, "b", configs)
    await beat(clock, a, b)
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    theirs = owned(b, configs)
    assert theirs
    assert owned(a, configs) | theirs == {c.name for c in configs}
    assert not owned(a, configs) & theirs  # each check on exactly one replica
    ordered = sorted(theirs)
    half = set(ordered[: len(ordered) // 2])
    for name in theirs:  # b ran half of them 1 s ago, the other half 8 s ago
        db.runs[name] = clock.monotonic() - (1 if name in half else 8)
    # b stops beating (killed): gone for the database after TTL; a takes over.
    t0 = clock.monotonic()
    while not theirs <= owned(a, configs):
        await clock.advance(BEAT)
        await beat(clock, a)
        assert clock.monotonic() - t0 <= TTL + BEAT
    now = clock.monotonic()
    for name in theirs:
        at = plans(a)[name]
        if name in half:  # last ran 1 s before the kill: due at its usual phase
            assert at == pytest.approx(db.runs[name] + 10.0)
        else:  # overdue: at once, spread over a short window
            assert now <= at < now + TAKEOVER_SPREAD_S


async def test_a_replica_cut_off_stops_within_its_lease_and_comes_back_without_double_runs(
    clock: FakeClock,
) -> None:
    db, configs = Database(clock), checks()
    a, b = replica_of(db, "a", configs), replica_of(db, "b", configs)
    await beat(clock, a, b)
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    theirs = owned(b, configs)
    db.down.add(b.membership.me.id)
    last_ok = clock.monotonic()
    with capture_logs() as logs:
        # Its beat hangs (no answer): the lease alone stops it; a beats on.
        while owned(b, configs) and clock.monotonic() - last_ok < 2 * TTL:
            await clock.advance(BEAT / 4)
            if (clock.monotonic() - last_ok) % BEAT == 0:
                await beat(clock, a)
        stopped = clock.monotonic() - last_ok
        await beat(clock, b)  # then fails
        # b stops before the database counts it gone (TTL), a beat ahead.
        assert stopped <= TTL - BEAT
        assert b.detail()["owned_checks"] == 0
        assert "store" in str(b.detail()["owns_nothing"])
        # It cannot tell a cut-off from an outage of the whole fleet: it probes its
        # share on its own, results kept local.
        assert orphans(b, configs) == theirs
        assert b.detail()["orphaned_checks"] == len(theirs)
        while not theirs <= owned(a, configs):
            await clock.advance(BEAT)
            await beat(clock, a, b)
        assert clock.monotonic() - last_ok <= TTL + 2 * BEAT
        assert not owned(b, configs)  # never both at once
        for name in theirs:  # a ran them just now
            db.runs[name] = clock.monotonic()
            db.runners[name] = a.membership.me.id
        db.down.clear()
        await beat(clock, b)  # back: a ran them, so it drops its own observations…
        assert not orphans(b, configs)
        assert not owned(b, configs)  # …and waits for a to let go
        await beat(clock, a)
        assert not owned(a, configs) & theirs
        for _ in range(SETTLE_BEATS):
            await clock.advance(BEAT)
            await beat(clock, a, b)
    assert owned(b, configs) == theirs
    for name in theirs:  # not at once: a full interval after a's run
        assert plans(b)[name] == pytest.approx(db.runs[name] + 10.0)
    events = [e["event"] for e in logs]
    assert "checks_orphaned" in events
    assert "orphans_dropped" in events


async def test_checks_in_handover_when_the_store_goes_away_are_probed_by_their_new_owner(
    clock: FakeClock,
) -> None:
    """b joins; a lets b's share go at once, b waits a few beats before taking it. The
    store goes away in between: b probes that share as orphans (nobody else does)."""
    db, configs = Database(clock), checks()
    a = replica_of(db, "a", configs)
    await beat(clock, a)
    await clock.advance(BEAT)
    b = replica_of(db, "b", configs)
    await beat(clock, b, a)  # a sees b and lets b's share go; b's is still pending
    theirs = {c.name for c in configs} - owned(a, configs)
    assert theirs
    assert owned(b, configs) == set()
    db.down |= {a.membership.me.id, b.membership.me.id}
    for _ in range(int(TTL / BEAT) + 2):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    # Each probes what it last held, results kept local: every check by someone.
    assert orphans(a, configs) | orphans(b, configs) == {c.name for c in configs}
    assert orphans(b, configs) == theirs
    # Back: nobody ran b's share meanwhile but a before the handover, so b drops what it
    # saw and takes the checks as a newcomer; every check has one owner again.
    db.down.clear()
    for _ in range(int(TTL / BEAT) + SETTLE_BEATS + 2):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    assert owned(b, configs) == theirs
    assert owned(a, configs) == {c.name for c in configs} - theirs
    assert not orphans(a, configs) | orphans(b, configs)


async def test_a_fleet_of_one_keeps_its_checks_through_an_outage(clock: FakeClock) -> None:
    db, configs = Database(clock), checks()
    a = replica_of(db, "a", configs)
    await beat(clock, a)
    db.down.add(a.membership.me.id)
    for _ in range(int(TTL * 3)):
        await clock.advance(BEAT)
        await beat(clock, a)
    assert owned(a, configs) == {c.name for c in configs}


async def test_a_replica_whose_config_differs_says_so(clock: FakeClock) -> None:
    db, configs = Database(clock), checks()
    registry = CollectorRegistry()
    a = replica_of(db, "a", configs, hash="one", registry=registry)
    b = replica_of(db, "b", configs, hash="two")
    await beat(clock, a)
    assert registry.get_sample_value("monitor_config_consistent") == 1
    with capture_logs() as logs:
        await beat(clock, b, a)
    assert a.detail()["config_differs"] == [b.membership.me.id]
    assert registry.get_sample_value("monitor_config_consistent") == 0
    assert "config_differs" in [e["event"] for e in logs]
    await b.membership.leave()
    await beat(clock, a)
    assert registry.get_sample_value("monitor_config_consistent") == 1


def test_the_config_hash_follows_what_the_replicas_share() -> None:
    def parsed(daemon: str, token: str = "t1", interval: str = "1m") -> str:  # noqa: S107
        text = (
            f"daemon: {{{daemon}}}\napi: {{token: {token}}}\n"
            f"checks:\n  - {{name: a, kind: http, url: 'http://x', interval: {interval}}}\n"
        )
        return config_hash(parse_config(text, "m.yaml", {}))

    base = parsed('listen: "127.0.0.1:1"')
    assert parsed('listen: "127.0.0.1:2", state_dir: /x') == base  # its own, not shared
    assert parsed('listen: "127.0.0.1:1"', interval="2m") != base
    assert parsed('listen: "127.0.0.1:1"', token="t2") != base  # a secret counts…
    assert "t1" not in base  # …by its hash only


async def test_a_replica_gone_without_leaving_opens_one_incident_resolved_when_one_returns(
    clock: FakeClock, metrics: Metrics
) -> None:
    db, configs = Database(clock), checks(3)
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    managers = [IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
                for _ in range(2)]  # fmt: skip
    a = replica_of(db, "a", configs, incidents=managers[0])
    b = replica_of(db, "b", configs, incidents=managers[1])
    c = replica_of(db, "c", configs, incidents=manager)
    clean = replica_of(db, "d", configs, incidents=manager)
    await beat(clock, a, b, c, clean)
    await clean.membership.leave()  # a clean stop opens nothing
    for _ in range(int(TTL + 3 * BEAT)):
        await clock.advance(BEAT)
        await beat(clock, a, b)  # c is killed: silent from now on
    gone = [i for i in store.incidents.values() if i.key.startswith("monitor-health:")]
    assert [i.key for i in gone] == [gone_key("c")]  # one, across the fleet
    assert gone[0].status is IncidentStatus.TRIGGERED
    assert "stopped beating" in gone[0].message
    # A replica starts again on that host: it resolves it.
    again = replica_of(db, "c", configs, incidents=IncidentManager(
        store, clock, metrics, cooldown=timedelta(minutes=30)))  # fmt: skip
    again.membership.me = replace(again.membership.me, id="c:2:c")
    await beat(clock, again)
    assert store.incidents[gone[0].id].status is IncidentStatus.RESOLVED
    assert store.entries[-1].text == "replica c:2:c beats on c"


# --- a transition the store did not take ---------------------------------------------


class Flaky(MemoryStore):
    """A store that can be away."""

    away = False

    def _live(self) -> None:
        if self.away:
            raise StoreError("the store is away")
        super()._live()


async def test_a_check_that_recovers_while_the_store_is_away_resolves_once_it_is_back(
    clock: FakeClock, metrics: Metrics
) -> None:
    store = Flaky()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    handler.configure([SeverityRule.model_validate({"name": "all", "severity": "P1"})], [])
    [config] = [
        HttpCheckConfig(name="site", kind="http", url="http://x", failure_threshold=1,
                        success_threshold=1).resolved(Defaults())
    ]  # fmt: skip
    ticks = itertools.count()

    async def feed(ok: bool) -> None:
        next(ticks)
        await clock.advance(30)
        outcome, failure = (Outcome.UP, None) if ok else (Outcome.DOWN, FailureKind.CONNECT)
        await handler(config, CheckResult("site", "http", outcome, failure, "x", clock.now(), 0.1))

    await feed(ok=False)
    [incident] = store.incidents.values()
    assert incident.status is IncidentStatus.TRIGGERED
    store.away = True
    with pytest.raises(StoreError):
        await feed(ok=True)  # recovered: the transition's writes fail
    store.away = False
    await feed(ok=True)  # the store is back: the transition is written now
    assert store.incidents[incident.id].status is IncidentStatus.RESOLVED
    assert store.states["site"].state.value == "up"
    assert manager.open_for("site") is None


async def test_two_replicas_blind_for_one_cause_share_one_monitor_health_incident(
    clock: FakeClock, metrics: Metrics
) -> None:
    store = MemoryStore()
    one, two = (IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
                for _ in range(2))  # fmt: skip
    key = "monitor-health:rate_limited:api.github.com"
    first = await one.monitor_health(key, "rate limited; 1 check blind", "…: a", ["a"])
    second = await two.monitor_health(key, "rate limited; 1 check blind", "…: b", ["b"])
    assert first is not None
    assert second is not None
    assert second.id == first.id
    assert len(store.incidents) == 1


async def test_a_beat_that_never_answers_is_given_up_when_the_lease_runs_out(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    db, configs = Database(clock), checks()
    a = replica_of(db, "a", configs, registry=registry)
    b = replica_of(db, "b", configs)
    await beat(clock, a, b)
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a, b)
    assert owned(a, configs)
    hang = asyncio.Event()

    async def never(*_args: object) -> tuple[list[Replica], list[Replica]]:
        await hang.wait()
        return [], []

    a.book.beat_and_record = never  # type: ignore[method-assign,assignment]
    started = clock.monotonic()
    stepping = asyncio.create_task(a.step(started))
    await clock.advance(TTL - 2 * BEAT)
    assert not stepping.done()  # it waits while the lease holds…
    assert owned(a, configs)
    await clock.advance(BEAT)
    await stepping  # …and gives up when it runs out
    assert not owned(a, configs)
    assert registry.get_sample_value("monitor_replicas_live") == 0
    assert a.detail()["store_reachable"] is False


# --- the PostgreSQL store's side --------------------------------------------------


async def test_the_store_keeps_the_latest_run_and_gives_each_gone_replica_once(
    pg_dsn: str,
) -> None:
    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await a.open()
    await b.open()
    try:
        assert isinstance(a, RunBook)
        await a.record_runs("a", [("x", 3.0), ("y", 30.0)])
        await b.record_runs("b", [("x", 20.0)])  # older than what a recorded: ignored
        ages = await b.last_runs(["x", "y", "never"])
        assert set(ages) == {"x", "y"}
        assert 3.0 <= ages["x"] < 8.0  # by the database's clock
        assert 30.0 <= ages["y"] < 35.0
        runners = await b.last_runners(["x", "y", "never"])
        assert {c: r for c, (_, r) in runners.items()} == {"x": "a", "y": "a"}
        assert runners["x"][0] == pytest.approx(ages["x"], abs=1.0)
        me = ReplicaId("h:1:a", "h", 1, "1.0", TTL, "hash-a")
        [seen] = await a.beat_replica(me)
        assert seen.config_hash == "hash-a"
        other = ReplicaId("h:2:b", "h", 2, "1.0", TTL, "hash-b")
        await b.beat_replica(other)
        await b.beat_replica(ReplicaId("h:3:c", "h", 3, "1.0", TTL, "hash-c"))
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("UPDATE replicas SET seen_at = now() - interval '1 minute'"
                         " WHERE id = 'h:3:c'")  # fmt: skip
        claims = [await a.beat_and_record(me, [], [], TTL),
                  await b.beat_and_record(other, [], [], TTL)]  # fmt: skip
        assert [[r.id for r in gone] for _, gone in claims] == [["h:3:c"], []]
        assert [r.id for r in await a.beat_replica(me)] == ["h:1:a", "h:2:b"]
    finally:
        await a.close()
        await b.close()


async def test_one_beat_statement_renews_records_writes_readings_and_claims_the_gone(
    pg_dsn: str,
) -> None:
    """`beat_and_record` is the four calls in one: the live set, the runs, the readings
    (as `save_readings` writes them), and each gone replica to one claimer, never the
    claimer itself even when its own row is stale."""
    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await a.open()
    await b.open()
    me = ReplicaId("h:1:a", "h", 1, "1.0", TTL, "hash-a")
    other = ReplicaId("h:2:b", "h", 2, "1.0", TTL, "hash-b")
    try:
        live, gone = await a.beat_and_record(me, [("x", 3.0)], [("x", '{"n": 1}')], None)
        assert ([r.id for r in live], gone) == (["h:1:a"], [])
        live, gone = await b.beat_and_record(other, [("x", 20.0)], [], TTL)
        assert ([r.id for r in live], gone) == (["h:1:a", "h:2:b"], [])
        assert set(await b.last_runners(["x"])) == {"x"}
        assert (await b.last_runners(["x"]))["x"][1] == "h:1:a"  # b's run is older
        _, readings = await b.load_readings(None, other_than="h:2:b")
        assert readings == {"x": '{"n": 1}'}
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("UPDATE replicas SET seen_at = now() - interval '1 minute'")
        # Both rows are stale: a claims b, not itself; b, back, finds nobody gone.
        live, gone = await a.beat_and_record(me, [], [], TTL)
        assert ([r.id for r in live], [r.id for r in gone]) == (["h:1:a"], ["h:2:b"])
        assert gone[0].age_s >= 60
        live, gone = await b.beat_and_record(other, [], [], TTL)
        assert ([r.id for r in live], gone) == (["h:1:a", "h:2:b"], [])
        live, gone = await a.beat_and_record(me, [], [], TTL)
        assert ([r.id for r in live], gone) == (["h:1:a", "h:2:b"], [])
    finally:
        await a.close()
        await b.close()


# --- an outage of the store: orphans ---------------------------------------------


def strict(n: int) -> list[CheckConfigBase]:
    """Checks that go down on one failing run and up on one passing run."""
    return [
        HttpCheckConfig(name=f"c{i}", kind="http", url="http://x", interval="10s",
                        failure_threshold=1, success_threshold=1).resolved(Defaults())
        for i in range(n)
    ]  # fmt: skip


class Member:
    """A fleet member with its pipeline on the shared store (a `Flaky` one)."""

    def __init__(
        self, db: Database, name: str, configs: list[CheckConfigBase], store: Flaky
    ) -> None:
        self.registry = CollectorRegistry()
        metrics = Metrics(CollectorRegistry())
        self.manager = IncidentManager(store, db.clock, metrics, cooldown=timedelta(minutes=30))
        self.handler = ResultHandler(metrics, clock=db.clock, store=store, incidents=self.manager)
        self.handler.configure([SeverityRule.model_validate({"name": "all", "severity": "P1"})],
                               [])  # fmt: skip
        self.adopted: list[str] = []

        async def adopt(checks: list[CheckConfigBase]) -> None:
            self.adopted += [c.name for c in checks]
            await self.handler.adopt(checks)

        self.fleet = replica_of(db, name, configs, registry=self.registry, adopt=adopt,
                                drop=self.handler.disown,
                                held=self.handler.unsettled.__contains__)  # fmt: skip
        self.handler.orphaned = self.fleet.orphaned
        self.sink = self.fleet.recording(self.handler)
        self.configs = {c.name: c for c in configs}
        self.clock = db.clock

    async def run(self, name: str, *, ok: bool) -> None:
        """A run of `name`, as the scheduler would make it through the gate."""
        assert self.fleet.owns(name)
        outcome, failure = (Outcome.UP, None) if ok else (Outcome.DOWN, FailureKind.CONNECT)
        result = CheckResult(name, "http", outcome, failure, "x", self.clock.now(), 0.1)
        await self.sink(self.configs[name], result)


async def shared(clock: FakeClock, n: int = 6) -> tuple[Database, Flaky, Member, Member]:
    """Two replicas sharing `n` checks, each run once, all up."""
    db, configs, store = Database(clock), strict(n), Flaky()
    a, b = Member(db, "a", configs, store), Member(db, "b", configs, store)
    await beat(clock, a.fleet, b.fleet)
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a.fleet, b.fleet)
    for r in (a, b):
        assert owned(r.fleet, configs)
        for name in owned(r.fleet, configs):
            await r.run(name, ok=True)
    await clock.advance(BEAT)
    await beat(clock, a.fleet, b.fleet)  # the runs are recorded
    return db, store, a, b


class Readings:
    """Stands in for the fleet view: readings due, and those given back."""

    def __init__(self) -> None:
        self.due: set[str] = set()
        self.back: list[set[str]] = []

    def take(self) -> tuple[set[str], list[tuple[str, str]]]:
        due, self.due = self.due, set()
        return due, [(c, "{}") for c in sorted(due)]

    def give_back(self, checks: set[str]) -> None:
        self.back.append(checks)
        self.due |= checks


async def test_each_beat_is_one_call_carrying_runs_readings_and_the_claim(
    clock: FakeClock,
) -> None:
    """The runs and readings since the last beat ride on it; a beat the store refused
    keeps the runs and gives the readings back; the claim of gone replicas rides only
    once this replica has beaten for a ttl and a beat."""
    db, configs = Database(clock), strict(3)
    member = Member(db, "a", configs, Flaky())
    fleet, readings = member.fleet, Readings()
    fleet.carried = readings
    await beat(clock, fleet)
    assert db.beats[-1] == ("a:1:a", 0, 0, None)
    for name in owned(fleet, configs):
        await member.run(name, ok=True)
    readings.due = {"c0", "c1"}
    db.down.add("a:1:a")
    await clock.advance(BEAT)
    await beat(clock, fleet)
    assert readings.back == [{"c0", "c1"}]
    assert readings.due == {"c0", "c1"}
    db.down.clear()
    await clock.advance(BEAT)
    await beat(clock, fleet)
    assert db.beats[-1][:3] == ("a:1:a", 3, 2)  # the runs kept, the readings again
    assert set(db.runs) == {"c0", "c1", "c2"}
    assert set(db.readings) == {"c0", "c1"}
    assert readings.due == set()
    claims = [b[3] for b in db.beats]
    while claims[-1] is None:
        await clock.advance(BEAT)
        await beat(clock, fleet)
        claims = [b[3] for b in db.beats]
    assert claims[-1] == TTL
    # The failed beat ended its run of beats: the claim rides a ttl and a beat after
    # the next one (beats[1]; the store never saw the failed one).
    assert claims.index(TTL) == 1 + round((TTL + BEAT) / BEAT)


async def test_a_fleet_view_that_fails_costs_its_readings_not_the_beat(clock: FakeClock) -> None:
    db, configs = Database(clock), strict(2)
    fleet = replica_of(db, "a", configs)

    class Broken(Readings):
        def take(self) -> tuple[set[str], list[tuple[str, str]]]:
            raise RuntimeError("a bug")

    fleet.carried = Broken()
    with capture_logs() as logs:
        await beat(clock, fleet)
    assert db.beats == [("a:1:a", 0, 0, None)]
    assert [r.id for r in fleet.membership.live] == ["a:1:a"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["fleet_view_failed"]


async def test_recording_tells_then_after_the_sink_took_the_result_or_failed(
    clock: FakeClock,
) -> None:
    """The fleet view is told of a run (its reading is written at the next beat) only
    once the pipeline has the result, and also when the pipeline failed."""
    db, configs, store = Database(clock), strict(2), Flaky()
    member = Member(db, "a", configs, store)
    await beat(clock, member.fleet)
    told: list[tuple[str, bool]] = []
    seen: list[str] = []

    async def pipeline(config: CheckConfigBase, result: CheckResult) -> None:
        seen.append(config.name)
        if config.name == configs[1].name:
            raise StoreError("away")

    sink = member.fleet.recording(pipeline, lambda name: told.append((name, name in seen)))
    at = clock.now()
    for config in configs:
        with contextlib.suppress(StoreError):
            await sink(config, CheckResult(config.name, "http", Outcome.UP, None, "x", at, 0.1))
    assert told == [(configs[0].name, True), (configs[1].name, True)]


async def test_the_whole_fleet_without_its_store_keeps_probing_and_delivers_when_it_is_back(
    clock: FakeClock,
) -> None:
    db, store, a, b = await shared(clock)
    configs = list(a.configs.values())
    mine_a, mine_b = owned(a.fleet, configs), owned(b.fleet, configs)
    x, y = sorted(mine_a)[0], sorted(mine_b)[0]
    a.adopted.clear()
    b.adopted.clear()
    db.down |= {a.fleet.membership.me.id, b.fleet.membership.me.id}
    store.away = True
    with capture_logs() as logs:
        while owned(a.fleet, configs) or owned(b.fleet, configs):
            await clock.advance(BEAT)
            await beat(clock, a.fleet, b.fleet)
        # The lease ran out: each probes the share it last owned, on its own.
        assert orphans(a.fleet, configs) == mine_a
        assert orphans(b.fleet, configs) == mine_b
        assert a.registry.get_sample_value("monitor_checks_orphaned") == len(mine_a)
        assert "probing" in str(a.fleet.detail()["owns_nothing"])
        await a.run(x, ok=False)  # x goes down, y goes down and comes back, nothing written
        await b.run(y, ok=False)
        await clock.advance(5)
        await b.run(y, ok=True)
        await b.run(y, ok=False)
        assert a.handler.states[x].state.value == "down"
        assert not store.incidents
        for _ in range(int(30 / BEAT)):  # 30 s without a database
            await clock.advance(BEAT)
            await beat(clock, a.fleet, b.fleet)
        assert orphans(a.fleet, configs) == mine_a
        db.down.clear()
        store.away = False
        await beat(clock, a.fleet)  # back first: alone in the live set
        assert owned(a.fleet, configs) == mine_a  # its own observations stand, at once
        # A check with held changes runs at once, to write them; the others at their phase.
        assert plans(a.fleet)[x] == clock.monotonic()
        assert all(plans(a.fleet).get(n) != clock.monotonic() for n in mine_a - {x})
        assert not owned(a.fleet, configs) & mine_b  # the other's share is not its own
        await beat(clock, b.fleet)
        assert orphans(b.fleet, configs) == mine_b  # still probing while a lets go
        for _ in range(SETTLE_BEATS):
            await clock.advance(BEAT)
            await beat(clock, a.fleet, b.fleet)
    assert owned(a.fleet, configs) == mine_a
    assert owned(b.fleet, configs) == mine_b
    assert not orphans(a.fleet, configs) | orphans(b.fleet, configs)
    assert a.registry.get_sample_value("monitor_checks_orphaned") == 0
    assert not a.adopted + b.adopted  # nothing read back: what they saw is the truth
    assert "orphans_kept" in [e["event"] for e in logs]
    assert plans(b.fleet)[y] == clock.monotonic()  # taken at the last beat: run at once
    # Those runs write the held transitions: one incident each, then no more.
    await a.run(x, ok=False)
    await b.run(y, ok=False)
    await a.run(x, ok=False)
    await b.run(y, ok=False)
    assert sorted(i.key for i in store.incidents.values()) == sorted([x, y])
    assert all(i.status is IncidentStatus.TRIGGERED for i in store.incidents.values())
    assert store.states[x].state.value == "down"
    await clock.advance(BEAT)
    await beat(clock, a.fleet, b.fleet)
    assert db.runners[x] == a.fleet.membership.me.id


async def test_a_replica_cut_off_drops_what_it_saw_of_checks_the_others_ran(
    clock: FakeClock,
) -> None:
    db, store, a, b = await shared(clock)
    configs = list(a.configs.values())
    theirs = owned(b.fleet, configs)
    y = sorted(theirs)[0]
    b.adopted.clear()
    db.down.add(b.fleet.membership.me.id)  # b alone is cut off
    while not theirs <= owned(a.fleet, configs):
        await clock.advance(BEAT)
        await beat(clock, a.fleet, b.fleet)
    assert orphans(b.fleet, configs) == theirs  # it cannot tell: it probes them too
    await b.run(y, ok=False)  # b sees y fail (kept local)…
    await a.run(y, ok=False)  # …and so does a, which owns it now and opens the incident
    [incident] = store.incidents.values()
    await clock.advance(BEAT)
    await beat(clock, a.fleet, b.fleet)  # a records its run
    assert db.runners[y] == a.fleet.membership.me.id
    db.down.clear()
    with capture_logs() as logs:
        await beat(clock, b.fleet)
    assert "orphans_dropped" in [e["event"] for e in logs]
    # a ran y meanwhile; the others were due later, so nobody ran them but b: kept.
    assert orphans(b.fleet, configs) == theirs - {y}
    assert y not in b.handler.unsettled  # its own down transition is never written
    assert b.handler.states[y].state.value == "down"  # the store's state, read back
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a.fleet, b.fleet)
    assert owned(b.fleet, configs) == theirs
    assert not owned(a.fleet, configs) & theirs
    assert y in b.adopted
    assert not (theirs - {y}) & set(b.adopted)
    await b.run(y, ok=False)
    assert list(store.incidents) == [incident.id]  # still the one incident
    await b.run(y, ok=True)
    assert store.incidents[incident.id].status is IncidentStatus.RESOLVED
    assert len(store.incidents) == 1


async def test_a_return_the_store_answers_only_in_part_is_decided_at_the_next_beat(
    clock: FakeClock,
) -> None:
    db, _store, a, b = await shared(clock)
    configs = list(a.configs.values())
    mine = owned(b.fleet, configs)
    b.adopted.clear()
    db.down.add(b.fleet.membership.me.id)
    while owned(b.fleet, configs):  # its lease runs out before a counts it gone
        await clock.advance(BEAT)
        await beat(clock, a.fleet, b.fleet)
    db.down.clear()
    book = b.fleet.book
    answers = book.last_runners

    async def refused(_checks: Sequence[str]) -> dict[str, tuple[float, str]]:
        raise StoreError("postgresql://db/monitor: connection reset")

    book.last_runners = refused  # type: ignore[method-assign,assignment]
    await beat(clock, b.fleet)  # the beat is taken, who ran its orphans is not known
    assert orphans(b.fleet, configs) == mine
    assert not owned(b.fleet, configs)
    book.last_runners = answers  # type: ignore[method-assign]
    for _ in range(SETTLE_BEATS + 1):
        await clock.advance(BEAT)
        await beat(clock, a.fleet, b.fleet)
    assert owned(b.fleet, configs) == mine  # nobody else ran them: kept, not read back
    assert not owned(a.fleet, configs) & mine
    assert not b.adopted
