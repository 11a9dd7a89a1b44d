"""Results through the pipeline into incidents: rules, `for:`, suppression, restart. Fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import CheckConfigBase, Defaults
from monitor.core.model import CheckResult, FailureKind, Outcome, Severity
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.maintenance import MaintenanceWindow
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule
from monitor.incidents.silences import SilenceBook
from tests.fakes import FakeClock, MemoryStore


def check(name: str, **fields) -> CheckConfigBase:
    return HttpCheckConfig(name=name, kind="http", url="http://x", failure_threshold=1,
                           success_threshold=1, **fields).resolved(Defaults())  # fmt: skip


@pytest.fixture
async def world(clock: FakeClock, metrics):
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    book = SilenceBook(store, clock)
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager, silences=book)
    handler.configure([SeverityRule.model_validate({"name": "all", "severity": "P1"})], [])
    return store, manager, book, handler


async def feed(handler: ResultHandler, clock: FakeClock, config: CheckConfigBase, ok: bool) -> None:
    outcome = Outcome.UP if ok else Outcome.DOWN
    failure = None if ok else FailureKind.CONNECT
    await handler(config, CheckResult(config.name, "http", outcome, failure, "x", clock.now(), 0.1))


NO_REASON = None


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("nothing", NO_REASON),
        ("parent down", "parent 'homepage' is down"),
        ("maintenance", "maintenance 'docs-deploy' until 2026-11-02 13:00 UTC"),
        ("silence", "silence #1 by alice until 2026-11-02 14:00 UTC: docs migration"),
        ("expired silence", NO_REASON),
    ],
)
async def test_why_paging_is_held_back(world, clock, setup: str, expected: str | None) -> None:
    store, manager, book, handler = world
    homepage, docs = check("homepage"), check("docs", depends_on=["homepage"])
    if setup == "parent down":
        await feed(handler, clock, homepage, ok=False)
    if setup == "maintenance":
        window = MaintenanceWindow.model_validate({
            "name": "docs-deploy", "checks": ["docs"], "start": clock.now() - timedelta(minutes=5),
            "end": clock.now() + timedelta(hours=1),
        })  # fmt: skip
        handler.configure(handler.rules, [window])
    if setup in ("silence", "expired silence"):
        silence = await book.add(
            {"checks": ["doc*"]},
            clock.now(),
            clock.now() + timedelta(hours=2),
            "alice",
            "docs migration",
        )
        if setup == "expired silence":
            await book.expire(silence.id)
    await feed(handler, clock, docs, ok=False)
    incident = manager.open_for("docs")
    assert incident is not None
    assert incident.suppressed == expected
    events = [e.event for e in store.entries if e.incident_id == incident.id]
    assert events == (["opened"] if expected is None else ["opened", "suppressed"])


async def test_resolutions_flow_while_the_parent_is_down(world, clock) -> None:
    _, manager, _, handler = world
    homepage, docs = check("homepage"), check("docs", depends_on=["homepage"])
    await feed(handler, clock, docs, ok=False)
    await feed(handler, clock, homepage, ok=False)
    await feed(handler, clock, docs, ok=True)
    assert manager.open_for("docs") is None  # resolved, though its parent is down


async def test_for_delays_the_incident(world, clock) -> None:
    _, manager, _, handler = world
    handler.configure([SeverityRule.model_validate({"severity": "P2", "match": {"for": "10m"}}),
                       SeverityRule.model_validate({"severity": "ignore"})], [])  # fmt: skip
    docs = check("docs")
    await feed(handler, clock, docs, ok=False)
    assert manager.open_for("docs") is None
    await clock.advance(9 * 60)
    await feed(handler, clock, docs, ok=False)
    assert manager.open_for("docs") is None
    await clock.advance(60)
    await feed(handler, clock, docs, ok=False)
    incident = manager.open_for("docs")
    assert incident is not None
    assert incident.severity is Severity.P2


async def test_state_comes_back_from_the_store(world, clock, metrics) -> None:
    store, manager, book, handler = world
    docs = check("docs")
    await feed(handler, clock, docs, ok=False)
    assert store.states["docs"].state is AlertState.DOWN
    again = ResultHandler(metrics, clock=clock, store=store, incidents=manager, silences=book)
    await again.load([docs])
    assert again.states["docs"].state is AlertState.DOWN
    await again.forget(["docs"])
    assert "docs" not in store.states


async def test_a_failing_streak_survives_a_restart(clock, metrics, tmp_path) -> None:
    # failure_threshold 3: two failures, a kill, one more failure after the restart is
    # the third in a row and opens the incident at once, as it would have without the kill.
    from monitor.store.sqlite import SqliteStore

    docs = HttpCheckConfig(name="docs", kind="http", url="http://x", failure_threshold=3,
                           success_threshold=2).resolved(Defaults())  # fmt: skip
    rules = [SeverityRule.model_validate({"name": "all", "severity": "P1"})]

    async def process(store: SqliteStore) -> tuple[IncidentManager, ResultHandler]:
        await store.open()
        manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
        await manager.load()
        handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager,
                                silences=SilenceBook(store, clock))  # fmt: skip
        handler.configure(rules, [])
        await handler.load([docs])
        return manager, handler

    first_store = SqliteStore(tmp_path / "state.sqlite3")
    manager, handler = await process(first_store)
    await feed(handler, clock, docs, ok=True)
    await feed(handler, clock, docs, ok=False)
    await feed(handler, clock, docs, ok=False)
    assert manager.open_for("docs") is None
    await first_store.close()  # no shutdown work: what is stored is what a kill -9 leaves
    store = SqliteStore(tmp_path / "state.sqlite3")
    manager, handler = await process(store)
    await feed(handler, clock, docs, ok=False)
    assert manager.open_for("docs") is not None
    assert (await store.load_check_states())["docs"].downs == 3
    # Recovering takes success_threshold (2) good runs, across a restart too.
    await feed(handler, clock, docs, ok=True)
    await store.close()
    store = SqliteStore(tmp_path / "state.sqlite3")
    manager, handler = await process(store)
    await feed(handler, clock, docs, ok=True)
    assert handler.states["docs"].state is AlertState.UP
    await store.close()


async def test_a_steady_state_writes_nothing(world, clock) -> None:
    store, _, _, handler = world
    docs = check("docs")
    writes: list[str] = []
    save = store.save_check_state

    async def counting(name, state) -> None:
        writes.append(name)
        await save(name, state)

    store.save_check_state = counting
    for _ in range(5):
        await feed(handler, clock, docs, ok=True)
    assert writes == ["docs"]  # unknown → up, then nothing
