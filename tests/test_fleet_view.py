"""What every replica of a fleet serves, under a fake clock over one in-memory store that
two replicas share: incident changes start from the store's row (a stale cache cannot
undo another replica's acknowledgement), the change feed and the periodic reload bring
incidents and silences to every replica, the owner's readings of its checks reach the
others, and SLOs count every replica's runs with one replica raising the burn."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import (
    CheckResult,
    FailureKind,
    Incident,
    IncidentStatus,
    Outcome,
    Silence,
    TimelineEntry,
)
from monitor.engine.fleetview import (
    READ_WAIT_S,
    RELOAD_BEATS,
    FleetReadings,
    FleetView,
    Reading,
)
from monitor.engine.history import RUNS, HistoryBook, Rollups, RunHistory
from monitor.engine.slo import SloEvaluator
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.store.readings import CHANGED_INCIDENTS, CHANGED_SILENCES, incident_changed
from tests.fakes import FakeClock, MemoryStore, settle
from tests.fuzz import mutate
from tests.test_incidents import DOWN, UP, event
from tests.test_slo import RULES, history, objective

BEAT = 1.0


class SharedStore(MemoryStore):
    """`MemoryStore` with what a fleet's store adds: readings, and a change feed that
    tells every listener of each incident and silence change (`feed=False`: it is
    silent, as one that lost its notices)."""

    def __init__(self) -> None:
        super().__init__()
        self.readings: dict[str, tuple[float, str, str]] = {}  # check → (t, replica, text)
        self.listeners: list[Callable[[str], None]] = []
        self.feed = True
        self.t = 0.0
        self.lists = 0  # `list_incidents` calls: full reads of the incidents
        self.saved: list[list[str]] = []  # the checks of each `save_readings`
        self.loads = 0  # `load_readings` calls
        self.answer = asyncio.Event()  # cleared: `load_readings` does not answer
        self.answer.set()

    def _tell(self, what: str) -> None:
        if self.feed:
            for notice in self.listeners:
                notice(what)

    async def create_incident(
        self, incident: Incident, entries: Sequence[TimelineEntry]
    ) -> Incident:
        created = await super().create_incident(incident, entries)
        self._tell(incident_changed(created.id))  # as PostgreSQL's: naming the incident
        return created

    async def update_incident(self, incident: Incident, entries: Sequence[TimelineEntry]) -> None:
        await super().update_incident(incident, entries)
        self._tell(incident_changed(incident.id))

    async def list_incidents(self, **kwargs: Any) -> list[Incident]:
        self.lists += 1
        return await super().list_incidents(**kwargs)

    async def create_silence(self, silence: Silence) -> Silence:
        created = await super().create_silence(silence)
        self._tell(CHANGED_SILENCES)
        return created

    async def save_readings(self, replica_id: str, readings: Sequence[tuple[str, str]]) -> None:
        self.saved.append([c for c, _ in readings])
        self.t += 1
        for check, text in readings:
            self.readings[check] = (self.t, replica_id, text)

    async def load_readings(
        self, since: float | None, *, other_than: str | None = None
    ) -> tuple[float, dict[str, str]]:
        self.loads += 1
        await self.answer.wait()
        return self.t, {
            c: r for c, (t, w, r) in self.readings.items()
            if (since is None or t > since) and w != other_than
        }  # fmt: skip

    async def listen_changes(self, notice: Callable[[str], None]) -> None:
        self.listeners.append(notice)
        try:
            await asyncio.Event().wait()
        finally:
            self.listeners.remove(notice)


class Local:
    """A replica's own pipeline readings (`CheckReadings`)."""

    def __init__(self) -> None:
        self.states: dict[str, CheckState] = {}
        self.last: dict[str, CheckResult] = {}
        self.runs = HistoryBook()

    def ran(self, result: CheckResult, state: CheckState) -> None:
        self.states[result.check], self.last[result.check] = state, result
        self.runs.add(result)

    def state(self, check: str) -> CheckState | None:
        return self.states.get(check)

    def last_result(self, check: str) -> CheckResult | None:
        return self.last.get(check)

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        return self.runs.runs(check)

    def run_history(self, check: str) -> RunHistory | None:
        return self.runs.by_check.get(check)


class Replica:
    def __init__(self, store: SharedStore, clock: FakeClock, owned: set[str]) -> None:
        self.incidents = IncidentManager(
            store, clock, Metrics(CollectorRegistry()), cooldown=timedelta(minutes=30)
        )  # fmt: skip
        self.incidents.shared = True
        self.silences = SilenceBook(store, clock)
        self.local = Local()
        checks = [CheckConfigBase(name=n, kind="http") for n in ("a", "b")]
        self.view = FleetView(
            store, f"r{len(owned)}", clock, self.local, owned.__contains__, lambda: checks,
            beat_s=BEAT, incidents=self.incidents, silences=self.silences,
        )  # fmt: skip
        self.checks = {c.name: c for c in checks}

        async def pipeline(_config: CheckConfigBase, _result: CheckResult) -> None:
            pass

        self.sink = self.view.recording(pipeline)

    async def ran(self, result: CheckResult, state: CheckState) -> None:
        """A run of `result.check` delivered to the pipeline, as the scheduler does."""
        self.local.ran(result, state)
        await self.sink(self.checks[result.check], result)


@pytest.fixture
def store() -> SharedStore:
    return SharedStore()


@pytest.fixture
async def fleet(store: SharedStore, clock: FakeClock) -> Any:
    """Two replicas over one store, their views running: `one` owns check `a`."""
    one, two = Replica(store, clock, {"a"}), Replica(store, clock, set())
    for r in (one, two):
        await r.incidents.load()
        await r.silences.load()
    tasks = [asyncio.ensure_future(r.view.run()) for r in (one, two)]
    await settle()
    yield one, two
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_ack_through_another_replica_is_not_undone_by_the_owner_s_next_run(
    store: SharedStore, clock: FakeClock
) -> None:
    owner, other = Replica(store, clock, {"docs"}), Replica(store, clock, set())
    opened = await owner.incidents.on_check(event(clock, DOWN))
    assert opened is not None
    await other.incidents.acknowledge(opened.id, "ana")
    # The owner has heard nothing (no feed, no reload): its copy still says triggered.
    await clock.advance(10)
    changed = await owner.incidents.on_check(event(clock, DOWN, DOWN, message="502 now"))
    assert changed is not None
    assert changed.status is IncidentStatus.ACKNOWLEDGED
    stored = store.incidents[opened.id]
    assert (stored.status, stored.assignee, stored.message) == (
        IncidentStatus.ACKNOWLEDGED, "ana", "502 now",
    )  # fmt: skip
    assert owner.incidents.open_for("docs") == stored  # its copy follows the store


async def test_a_resolve_through_another_replica_is_not_undone_either(
    store: SharedStore, clock: FakeClock
) -> None:
    owner, other = Replica(store, clock, {"docs"}), Replica(store, clock, set())
    opened = await owner.incidents.on_check(event(clock, DOWN))
    assert opened is not None
    await other.incidents.resolve(opened.id, "ana", "fixed by hand")
    await clock.advance(10)
    # The check recovers on the owner: nothing to resolve twice, nothing reopened.
    assert await owner.incidents.on_check(event(clock, UP, DOWN)) is None
    assert store.incidents[opened.id].status is IncidentStatus.RESOLVED
    assert [e.event for e in store.entries].count("resolved") == 1
    assert owner.incidents.open_for("docs") is None


async def test_incidents_and_silences_reach_every_replica_through_the_feed(
    fleet: Any, clock: FakeClock
) -> None:
    one, two = fleet
    opened = await one.incidents.on_check(event(clock, DOWN))
    assert opened is not None
    await clock.advance(0.2)  # well within a beat: the notice did it
    assert [i.id for i in two.incidents.open_incidents] == [opened.id]
    await two.incidents.acknowledge(opened.id, "ana")
    await clock.advance(0.2)
    assert one.incidents.open_incidents[0].status is IncidentStatus.ACKNOWLEDGED
    now = clock.now()
    silence = await two.silences.add({"checks": ["docs"]}, now, now + timedelta(hours=1), "ana", "")
    await clock.advance(0.2)
    assert [s.id for s in one.silences.active()] == [silence.id]


async def test_a_notice_naming_an_incident_reads_that_one_back_only(
    fleet: Any, store: SharedStore, clock: FakeClock
) -> None:
    one, two = fleet
    opened = await one.incidents.on_check(event(clock, DOWN))
    assert opened is not None
    await clock.advance(0.2)
    before = store.lists
    await one.incidents.resolve(opened.id, "ana", "fixed")
    await clock.advance(0.2)
    assert two.incidents.open_incidents == []
    assert store.lists == before  # one row read, not the open incidents again
    two.view.notice(CHANGED_INCIDENTS)  # a notice naming none: everything is read
    await clock.advance(0.2)
    assert store.lists == before + 1


async def test_without_notices_the_periodic_reload_catches_up(
    fleet: Any, store: SharedStore, clock: FakeClock
) -> None:
    one, two = fleet
    store.feed = False  # notices lost (a feed that reconnects)
    opened = await one.incidents.on_check(event(clock, DOWN))
    now = clock.now()
    await one.silences.add({"checks": ["docs"]}, now, now + timedelta(hours=1), "ana", "")
    await clock.advance(BEAT)
    assert two.incidents.open_incidents == []
    assert two.silences.active() == []
    await clock.advance(RELOAD_BEATS * BEAT)
    assert opened is not None
    assert [i.id for i in two.incidents.open_incidents] == [opened.id]
    assert len(two.silences.active()) == 1


async def test_a_view_whose_readings_ride_the_fleet_s_beat_wakes_only_to_reload(
    store: SharedStore, clock: FakeClock
) -> None:
    """Carried (`Fleet.carried` writes the readings): the view writes none itself and
    reads incidents again every `RELOAD_BEATS` beats, or at once on a notice."""
    one, two = Replica(store, clock, {"a"}), Replica(store, clock, set())
    two.view.carried = True
    beats = 0
    beat = two.view.beat

    async def counted() -> None:
        nonlocal beats
        beats += 1
        await beat()

    two.view.beat = counted  # type: ignore[method-assign]
    task = asyncio.ensure_future(two.view.run())
    try:
        await settle()
        lists = store.lists
        await one.ran(CheckResult("a", "http", Outcome.UP, None, "ok", clock.now(), 0.1),
                      CheckState(AlertState.UP, clock.now(), ups=1))  # fmt: skip
        for _ in range(RELOAD_BEATS - 1):
            await clock.advance(BEAT)
        assert store.lists == lists  # nine beats: no reload, not even a wake-up
        assert beats == 1  # the first, at the start
        assert store.saved == []
        await clock.advance(BEAT)
        assert store.lists == lists + 1  # the tenth
        assert beats == 2
        opened = await one.incidents.on_check(event(clock, DOWN))  # a notice
        await clock.advance(0.2)  # well within a beat: the notice did it
        assert opened is not None
        assert [i.id for i in two.incidents.open_incidents] == [opened.id]
        assert two.view.take() == (set(), [])  # its own runs: none
        one.view.carried = True
        due, rows = one.view.take()
        assert due == {"a"}
        assert [(c, json.loads(t)["last"]["message"]) for c, t in rows] == [("a", "ok")]
        one.view.give_back(due)
        assert one.view.take()[0] == {"a"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_owner_s_readings_are_served_by_every_replica(
    fleet: Any, clock: FakeClock
) -> None:
    one, two = fleet
    result = CheckResult("a", "http", Outcome.DOWN, None, "503 from a", clock.now(), 0.25)
    state = CheckState(AlertState.DOWN, clock.now(), downs=2)
    await one.ran(result, state)
    await clock.advance(BEAT)
    await two.view.current()  # a request to the other replica
    seen = two.view.readings
    assert seen.state("a") == state
    last = seen.last_result("a")
    assert last is not None
    assert (last.outcome, last.message, last.started_at) == (
        Outcome.DOWN, "503 from a", result.started_at,
    )  # fmt: skip
    assert seen.recent_runs("a") == one.local.recent_runs("a") != []
    assert seen.state("b") is None  # nobody ran it: unknown, as before
    # The check the replica runs itself is answered from its own pipeline.
    assert one.view.readings.state("a") is state


async def test_a_row_the_store_sends_again_is_not_parsed_again(
    store: SharedStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store sends rows again (its overlap for late commits): each text is parsed
    once, a changed one again, and an unreadable one is said once, not every beat."""
    parsed: list[str] = []
    real = Reading.from_text

    def counted(text: str) -> Reading:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(Reading, "from_text", staticmethod(counted))
    again: dict[str, str] = {}

    async def everything(since: float | None, **_: Any) -> tuple[float, dict[str, str]]:
        return 0.0, dict(again)  # every row, every time

    monkeypatch.setattr(store, "load_readings", everything)
    reader = Replica(store, clock, set())
    first = CheckResult("a", "http", Outcome.UP, None, "ok", clock.now(), 0.1)
    again["a"] = Reading(CheckState(AlertState.UP, clock.now()), first, RunHistory()).to_text()
    again["b"] = "not a reading"
    for _ in range(3):
        await reader.view.current()
        await clock.advance(BEAT)
    assert len(parsed) == 2  # a's row and b's, once each
    assert reader.view.readings.last_result("a") == first
    assert reader.view.readings.last_result("b") is None
    await clock.advance(10)
    second = CheckResult("a", "http", Outcome.DOWN, None, "503", clock.now(), 0.1)
    again["a"] = Reading(CheckState(AlertState.DOWN, clock.now()), second, RunHistory()).to_text()
    for _ in range(3):
        await reader.view.current()
        await clock.advance(BEAT)
    assert len(parsed) == 3  # the changed row, once
    assert reader.view.readings.last_result("a") == second


async def test_a_beat_writes_the_checks_run_since_the_last_one_and_only_those(
    store: SharedStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = Replica(store, clock, {"a", "b"})
    state = CheckState(AlertState.UP, clock.now())
    await owner.ran(CheckResult("a", "http", Outcome.UP, None, "ok", clock.now(), 0.1), state)
    await owner.view.beat()
    await owner.view.beat()  # nothing ran since: nothing written
    assert store.saved == [["a"]]
    real = store.save_readings

    async def refused(*_: Any) -> None:
        raise StoreError("database unreachable")

    monkeypatch.setattr(store, "save_readings", refused)
    await owner.ran(CheckResult("b", "http", Outcome.UP, None, "ok", clock.now(), 0.1), state)
    await owner.view.beat()
    monkeypatch.setattr(store, "save_readings", real)
    await owner.view.beat()  # b's reading, kept through the failed write
    assert store.saved == [["a"], ["b"]]
    assert set(store.readings) == {"a", "b"}


async def test_a_replica_reads_the_others_rows_only_when_asked_and_once_a_beat(
    fleet: Any, store: SharedStore, clock: FakeClock
) -> None:
    one, two = fleet
    state = CheckState(AlertState.UP, clock.now())
    for _ in range(5):
        await one.ran(CheckResult("a", "http", Outcome.UP, None, "ok", clock.now(), 0.1), state)
        await clock.advance(BEAT)
    assert store.loads == 0  # five beats, nobody asked: nothing read
    await asyncio.gather(*(two.view.current() for _ in range(10)))  # at once: one read
    await two.view.current()  # within the beat: none
    assert store.loads == 1
    assert two.view.readings.state("a") == state
    await clock.advance(BEAT)
    await two.view.current()
    assert store.loads == 2


async def test_a_request_waits_for_a_store_that_does_not_answer_one_second_at_most(
    fleet: Any, store: SharedStore, clock: FakeClock
) -> None:
    one, two = fleet
    first = CheckResult("a", "http", Outcome.UP, None, "ok", clock.now(), 0.1)
    await one.ran(first, CheckState(AlertState.UP, clock.now()))
    await clock.advance(BEAT)
    await two.view.current()
    store.answer.clear()  # the database stops answering
    second = CheckResult("a", "http", Outcome.DOWN, None, "503", clock.now(), 0.1)
    await one.ran(second, CheckState(AlertState.DOWN, clock.now()))
    await clock.advance(BEAT)
    asked = asyncio.ensure_future(two.view.current())
    await clock.advance(READ_WAIT_S - 0.01)
    assert not asked.done()
    await clock.advance(0.02)
    assert asked.done()  # answered from what was read before
    assert two.view.readings.last_result("a") == first
    assert store.loads == 2
    store.answer.set()  # the read under way comes back
    await settle()
    assert two.view.readings.last_result("a") == second


def test_a_reading_survives_its_text() -> None:
    at = FakeClock().now()
    result = CheckResult("a", "http", Outcome.UP, None, "ok", at, 0.1,
                         details={"confirmation": {"outcome": "refuted"}, "secret": "x"})  # fmt: skip
    state = CheckState(AlertState.BLIND, at, blinds=3, seen=AlertState.UP, seen_since=at,
                       cause="monitor-health:rate_limited")  # fmt: skip
    runs = RunHistory()
    for k in range(RUNS + 5):  # more than it keeps: the oldest have gone
        runs.add_run(at.timestamp() - 10 * (RUNS + 5 - k), ("up", "down", "blind")[k % 3], k / 8)
    back = Reading.from_text(Reading(state, result, runs).to_text())
    assert back.state == state
    assert back.last.details == {"confirmation": {"outcome": "refuted"}}  # nothing else
    assert back.runs.runs() == runs.runs()
    assert len(runs.runs()) == RUNS
    # A row of a replica of an earlier version (runs as [ISO 8601 start, outcome, ms]).
    earlier = json.loads(Reading(state, result, RunHistory()).to_text())
    del earlier["history"]
    earlier["runs"] = [[r["at"], r["outcome"], r["duration_ms"]] for r in runs.runs()[-2:]]
    assert Reading.from_text(json.dumps(earlier)).runs.runs() == runs.runs()[-2:]
    with pytest.raises((ValueError, KeyError)):
        Reading.from_text('{"state": {}}')


_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\n\x00\u2028\ud800'))
_TIMES = st.none() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]))
_COUNT = st.integers(min_value=0, max_value=2**40)


@settings(max_examples=300, deadline=None)
@given(
    state=st.builds(
        CheckState,
        st.sampled_from(AlertState),
        _TIMES,
        _COUNT,
        _COUNT,
        _COUNT,
        _COUNT,
        _COUNT,
        st.none() | st.sampled_from(AlertState),
        _TIMES,
        st.none() | _TEXT,
    ),
    check=_TEXT,
    kind=_TEXT,
    message=_TEXT,
    outcome=st.sampled_from(Outcome),
    failure=st.none() | st.sampled_from(FailureKind),
    at=st.datetimes(timezones=st.just(UTC)),
    duration=st.floats(min_value=0, max_value=1e6) | st.sampled_from([math.nan, math.inf]),
    confirmation=st.none() | st.dictionaries(_TEXT, st.none() | _TEXT | st.integers()),
)
def test_a_reading_s_text_is_its_document_as_json(
    state: CheckState, check: str, kind: str, message: str, outcome: Outcome,
    failure: FailureKind | None, at: datetime, duration: float, confirmation: Any,
) -> None:  # fmt: skip
    """`to_text` assembles the JSON by hand: it is exactly what `json.dumps` makes of the
    document (a duration that is no number: null, which PostgreSQL's json accepts and
    `from_text` reads as 0), and reads back as the reading."""
    details = {} if confirmation is None else {"confirmation": confirmation}
    result = CheckResult(check, kind, outcome, failure, message, at, duration, details=details)
    reading = Reading(state, result, RunHistory())
    text = reading.to_text()
    doc = reading.to_doc()
    if math.isfinite(duration):
        assert text == json.dumps(doc, separators=(",", ":"))
    else:
        doc["last"]["duration_s"] = None
        assert json.loads(text) == doc
    back = Reading.from_text(text)
    assert back.state == state
    assert (back.last.check, back.last.message, back.last.started_at) == (check, message, at)
    assert back.last.duration_s == (duration if math.isfinite(duration) else 0.0)


def test_a_reading_is_json_postgresql_takes_whatever_its_confirmation_holds() -> None:
    """A reading rides on the fleet's beat: text PostgreSQL's json type refused (NaN,
    Infinity) would fail the beat itself. A confirmation JSON cannot carry is null."""

    def strict(text: str) -> Any:
        def refuse(constant: str) -> None:
            raise ValueError(constant)

        return json.loads(text, parse_constant=refuse)

    at = FakeClock().now()
    for odd in ({"late_s": math.nan}, {"at": at}, {"ratio": -math.inf}):
        result = CheckResult("a", "http", Outcome.DOWN, None, "x", at, math.inf,
                             details={"confirmation": odd})  # fmt: skip
        doc = strict(Reading(CheckState(), result, RunHistory()).to_text())
        assert doc["last"]["confirmation"] is None
        assert doc["last"]["duration_s"] is None
    fine = {"outcome": "confirmed", "replicas": ["b"]}
    result = CheckResult("a", "http", Outcome.DOWN, None, "x", at, 0.5,
                         details={"confirmation": fine})  # fmt: skip
    assert (
        strict(Reading(CheckState(), result, RunHistory()).to_text())["last"]["confirmation"]
        == fine
    )


_UNREADABLE = (ValueError, KeyError, TypeError, IndexError)  # what `FleetView._read` takes


def _real_reading() -> Any:
    at = FakeClock().now()
    runs = RunHistory()
    for k in range(4):
        runs.add_run(at.timestamp() - 10 * k, "down", 0.25)
    result = CheckResult("a", "http", Outcome.DOWN, None, "503", at, 0.25)
    return json.loads(Reading(CheckState(AlertState.DOWN, at, downs=2), result, runs).to_text())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_row_made_wrong_is_unreadable_never_a_crash(data: st.DataObject) -> None:
    """A row is what another replica (or anyone with the database) wrote: each one made
    wrong is refused as unreadable, or read into runs the status page can show."""
    doc = _real_reading()
    mutate(data, doc)
    if data.draw(st.booleans()):  # or packed runs that `pack` did not make
        doc["history"] = base64.b64encode(data.draw(st.binary(max_size=400))).decode()
    try:
        reading = Reading.from_text(json.dumps(doc))
    except _UNREADABLE:
        return
    FleetReadings(Local(), {"a": reading}, lambda _n: False).recent_runs("a")


@given(st.binary(max_size=600))
def test_any_bytes_unpack_into_runs_that_show_or_are_refused(packed: bytes) -> None:
    try:
        runs = RunHistory.unpack(packed)
    except ValueError:
        return
    for run in runs.runs():
        datetime.fromisoformat(run["at"])


async def test_slos_count_every_replica_s_runs_and_one_replica_raises_the_burn(
    store: SharedStore, clock: FakeClock
) -> None:
    evaluators = []
    for leads in (True, False):
        r = Replica(store, clock, set())
        e = SloEvaluator(store, clock, Metrics(CollectorRegistry()).slo, Rollups(),
                         incidents=r.incidents)  # fmt: skip
        e.shared, e.leads = True, (lambda _key: True) if leads else (lambda _key: False)
        e.configure([objective(target=0.99)], RULES)
        evaluators.append(e)
    await history(store, "web", range(61, 600), up=100, down=0)
    for e in evaluators:
        await e.evaluate()
    # Another replica stores its runs of the last minutes: each one reads them back.
    await history(store, "web", range(1, 4), up=10, down=90)
    await clock.advance(1)
    for e in evaluators:
        e.stored([])  # its own batch: ignored, the store adds every replica's
        await e.evaluate()
    readings = [e.readings("web")[0] for e in evaluators]
    assert [(r.good, r.bad) for r in readings] == [(539 * 100 + 30, 270)] * 2
    assert {r.level for r in readings} == {"fast"}
    assert len([i for i in store.incidents.values() if i.is_open]) == 1
