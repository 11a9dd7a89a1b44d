"""Confirmation from another replica (`confirm: N`), as logic: the pipeline with a fake
confirmation book and the fake clock. Confirmed, refuted, unconfirmed (no answer in time,
no other replica, a store that is not shared, a replica that could not look), blind runs
that never ask, and the answering side (answer, blind, decline)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from monitor.checks.http.check import HttpCheckConfig
from monitor.config.loader import parse_config
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import CheckConfigBase, Defaults
from monitor.core.errors import ConfigError, StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.confirm import HEARD_POLL_S, Confirmation, Confirmer, definition_hash
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule
from monitor.store.confirmations import LISTENING, Answer, ConfirmationBook, Seen, Slot
from monitor.store.replicas import ReplicaId
from monitor.web.status import StatusView, render_html
from tests.fakes import FakeClock, MemoryStore, settle

ME = ReplicaId("host-a:1:a", "host-a", 1, "9.9.9", 15.0)
AT = datetime(2026, 11, 2, 12, 0, 1, tzinfo=UTC)


@dataclass
class FakeBook:
    """A `ConfirmationBook` in memory: `reply` answers each request as another replica."""

    reply: Callable[[int], list[Answer]] | None = None
    requests: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    answers: dict[int, list[Answer]] = field(default_factory=dict)
    closed: list[int] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    answered: list[tuple[int, str, Seen, str | None, str]] = field(default_factory=list)
    declined: list[int] = field(default_factory=list)

    async def request_confirmation(
        self, check: str, definition: str, requested_by: str, needed: int, within_s: float
    ) -> int:
        self.requests.append((check, definition, requested_by, needed, within_s))
        request = len(self.requests)
        self.answers[request] = self.reply(request) if self.reply else []
        return request

    async def claim_confirmation(self, replica: str) -> Slot | None:
        return self.slots.pop(0) if self.slots else None

    async def answer_confirmation(
        self, slot: int, replica: str, host: str, seen: Seen, failure: str | None, message: str
    ) -> None:
        self.answered.append((slot, replica, seen, failure, message))

    async def decline_confirmation(self, slot: int, replica: str) -> None:
        self.declined.append(slot)

    async def confirmation_answers(self, request: int) -> list[Answer]:
        return list(self.answers.get(request, []))

    async def close_confirmation(self, request: int) -> None:
        self.closed.append(request)

    async def prune_confirmations(self, older_than_s: float) -> int:
        return 0

    async def listen_confirmations(self, notice: Callable[[str], None]) -> None:
        await asyncio.Event().wait()


def answer(seen: Seen, message: str = "HTTP 200", replica: str = "host-b:2:b") -> Answer:
    failure = "http_status" if seen is Seen.DOWN else None
    return Answer(replica, "host-b", seen, failure, message, AT)


def check(name: str = "site", **fields: object) -> CheckConfigBase:
    values: dict[str, object] = {"url": "http://x", "failure_threshold": 1,
                                 "success_threshold": 1, "confirm": 2}  # fmt: skip
    values.update(fields)
    return HttpCheckConfig(name=name, kind="http", **values).resolved(Defaults())


def run(config: CheckConfigBase, clock: FakeClock, ok: bool,
        failure: FailureKind = FailureKind.HTTP_STATUS) -> CheckResult:  # fmt: skip
    if ok:
        return CheckResult(config.name, "http", Outcome.UP, None, "HTTP 200", clock.now(), 0.1)
    return CheckResult(config.name, "http", Outcome.DOWN, failure, "HTTP 500", clock.now(), 0.1)


@pytest.fixture
def world(clock: FakeClock, metrics):
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    handler.configure([SeverityRule.model_validate({"name": "all", "severity": "P1"})], [])
    return store, manager, handler


def fleet(book: ConfirmationBook, clock: FakeClock, peers: int = 1) -> Confirmer:
    async def probe(_name: str, _definition: str) -> None:
        return None

    return Confirmer(book, ME, lambda: peers, clock, probe)


def counted(registry, outcome: str) -> float:
    return registry.get_sample_value("monitor_confirmations_total", {"outcome": outcome}) or 0.0


async def test_confirmed_the_check_goes_down_and_the_timeline_names_both(
    world, clock, registry
) -> None:
    store, manager, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.DOWN, "HTTP 500")])
    handler.confirmer = fleet(book, clock)
    config = check()
    await handler(config, run(config, clock, ok=True))
    await handler(config, run(config, clock, ok=False))
    assert handler.states["site"].state is AlertState.DOWN
    ((name, definition, by, needed, within_s),) = book.requests
    assert (name, definition, by, needed) == ("site", definition_hash(config), ME.id, 1)
    assert within_s == config.timeout_s + 5
    assert book.closed == [1]
    (incident,) = manager.open_incidents
    timeline = await store.timeline(incident.id)
    (entry,) = [e for e in timeline if e.event == "confirmation"]
    assert entry.text.startswith("confirmed: seen down from 2 replicas")
    assert [(r["replica"], r["host"], r["seen"]) for r in entry.data["replicas"]] == [
        ("host-a:1:a", "host-a", "down"), ("host-b:2:b", "host-b", "down"),
    ]  # fmt: skip
    assert entry.data["replicas"][1]["failure"] == "http_status"
    assert entry.data["replicas"][1]["at"] == "2026-11-02T12:00:01+00:00"
    assert counted(registry, "confirmed") == 1


async def test_refuted_the_check_keeps_its_state_and_streak_and_asks_again(
    world, clock, registry
) -> None:
    _, manager, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.UP)])
    handler.confirmer = fleet(book, clock)
    config = check(failure_threshold=2)
    await handler(config, run(config, clock, ok=True))
    since = handler.states["site"].since
    await handler(config, run(config, clock, ok=False))
    assert book.requests == []  # one failure of two: nothing to confirm yet
    with capture_logs() as logs:
        await handler(config, run(config, clock, ok=False))
    state = handler.states["site"]
    assert (state.state, state.since, state.downs) == (AlertState.UP, since, 2)
    assert manager.open_incidents == []
    (refuted,) = [e for e in logs if e["event"] == "check_down_refuted"]
    assert refuted["reason"] == "replica host-b:2:b sees it up: HTTP 200"
    assert counted(registry, "refuted") == 1
    # The status page and its API say the failure is disputed.
    view = StatusView("t", clock, lambda: [config], handler, manager)
    (asset,) = view.snapshot()["assets"]
    assert (asset["state"], asset["disputed"]) == ("up", "another replica sees it up: HTTP 200")
    assert "(disputed)" in render_html(view.page())
    # The streak is kept: the very next failure asks again; confirmed, it goes down.
    book.reply = lambda _r: [answer(Seen.DOWN, "HTTP 500")]
    await handler(config, run(config, clock, ok=False))
    assert len(book.requests) == 2
    assert handler.states["site"].state is AlertState.DOWN
    (asset,) = view.snapshot()["assets"]
    assert asset["disputed"] is None


async def test_no_answer_in_time_goes_down_unconfirmed(world, clock, registry) -> None:
    store, manager, handler = world
    book = FakeBook()  # nobody answers
    handler.confirmer = fleet(book, clock)
    config = check(timeout="3s")
    pending = asyncio.create_task(handler(config, run(config, clock, ok=False)))
    await clock.advance(7.9)
    assert not pending.done()  # waits up to the timeout and 5 s
    assert handler.state("site") is None  # the check is not down while it waits
    await clock.advance(0.2)
    await pending
    assert handler.states["site"].state is AlertState.DOWN
    (incident,) = manager.open_incidents
    (entry,) = [e for e in await store.timeline(incident.id) if e.event == "confirmation"]
    assert entry.text.startswith("unconfirmed: no answer from 1 other replica within 8s")
    assert counted(registry, "unconfirmed") == 1
    assert book.closed == [1]


async def test_an_answer_ends_the_wait_at_once(world, clock) -> None:
    _, _, handler = world
    book = FakeBook()
    confirmer = fleet(book, clock)
    handler.confirmer = confirmer
    config = check()
    pending = asyncio.create_task(handler(config, run(config, clock, ok=False)))
    await settle()
    book.answers[1] = [answer(Seen.UP)]
    confirmer.notice("answer:1")  # the NOTIFY: no poll needed
    await settle()
    assert pending.done()
    assert handler.states["site"].state is AlertState.UNKNOWN


@pytest.mark.parametrize(
    ("peers", "confirmer", "reason"),
    [
        (0, True, "no other replica live"),
        (None, False, "no other replica: the store is not shared"),
    ],
)
async def test_alone_the_check_goes_down_as_today_and_says_so(
    world, clock, registry, peers: int | None, confirmer: bool, reason: str
) -> None:
    store, manager, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.UP)])
    if confirmer:
        handler.confirmer = fleet(book, clock, peers=peers or 0)
    config = check()
    await handler(config, run(config, clock, ok=False))
    assert book.requests == []
    assert handler.states["site"].state is AlertState.DOWN
    (incident,) = manager.open_incidents
    (entry,) = [e for e in await store.timeline(incident.id) if e.event == "confirmation"]
    who = "host-a:1:a" if confirmer else "this replica"
    assert entry.text == f"unconfirmed: {reason} ({who} saw down)"
    assert counted(registry, "unconfirmed") == 1


async def test_blind_runs_never_ask_and_a_blind_answer_is_no_up(world, clock, registry) -> None:
    _, _, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.BLIND, "rate limited until 12:30")])
    handler.confirmer = fleet(book, clock)
    config = check()
    for failure in (FailureKind.RATE_LIMITED, FailureKind.AUTH, FailureKind.MONITOR_RESOURCES):
        await handler(config, run(config, clock, ok=False, failure=failure))
    assert handler.states["site"].state.value == "blind"
    assert book.requests == []
    await handler(config, run(config, clock, ok=False))  # sees again: down, asks
    assert len(book.requests) == 1
    assert handler.states["site"].state.value == "down"
    detail = handler.last["site"].details["confirmation"]
    assert detail["outcome"] == "unconfirmed"
    assert detail["reason"] == "replica host-b:2:b could not look: rate limited until 12:30"
    assert counted(registry, "refuted") == 0


async def test_confirm_one_and_degraded_never_ask(world, clock) -> None:
    _, _, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.UP)])
    handler.confirmer = fleet(book, clock)
    plain = check("plain", confirm=1)
    await handler(plain, run(plain, clock, ok=False))
    assert handler.states["plain"].state is AlertState.DOWN
    slow = check("slow")
    degraded = CheckResult("slow", "http", Outcome.DEGRADED, FailureKind.SLOW, "slow",
                           clock.now(), 9.0)  # fmt: skip
    await handler(slow, degraded)
    assert handler.states["slow"].state is AlertState.DEGRADED
    assert book.requests == []


async def test_while_one_check_waits_the_others_go_on(world, clock) -> None:
    _, _, handler = world
    handler.confirmer = fleet(FakeBook(), clock)
    waiting, other = check("waiting"), check("other", confirm=1)
    pending = asyncio.create_task(handler(waiting, run(waiting, clock, ok=False)))
    await settle()
    await handler(other, run(other, clock, ok=False))
    assert handler.states["other"].state is AlertState.DOWN
    assert not pending.done()
    await clock.advance(20)
    await pending


async def test_more_needed_than_live_is_unconfirmed(world, clock) -> None:
    _, _, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.DOWN, "HTTP 500")])
    handler.confirmer = fleet(book, clock, peers=1)
    config = check(confirm=3)
    await handler(config, run(config, clock, ok=False))
    assert book.requests[0][3] == 1  # asks the one there is
    detail = handler.last["site"].details["confirmation"]
    assert detail["reason"] == "only 1 other replica live; 2 needed"
    assert handler.states["site"].state is AlertState.DOWN


async def test_the_answering_side_probes_declines_and_says_blind(clock) -> None:
    book = FakeBook()
    site, limited = check("site"), check("limited")
    results = {
        "site": run(site, clock, ok=False),
        "limited": run(limited, clock, ok=False, failure=FailureKind.RATE_LIMITED),
    }
    asked: list[str] = []

    async def probe(name: str, definition: str) -> tuple[CheckConfigBase, CheckResult] | None:
        asked.append(name)
        config = {"site": site, "limited": limited}.get(name)
        if config is None or definition_hash(config) != definition:
            return None
        return config, results[name]

    book.slots = [
        Slot(1, 1, "site", definition_hash(site), "host-b:2:b"),
        Slot(2, 2, "limited", definition_hash(limited), "host-b:2:b"),
        Slot(3, 3, "gone", "x", "host-b:2:b"),
        Slot(4, 4, "site", "another definition", "host-b:2:b"),
    ]
    confirmer = Confirmer(book, ME, lambda: 1, clock, probe)
    task = asyncio.create_task(confirmer.run())
    try:
        await settle()
        assert sorted(book.answered) == [
            (1, ME.id, Seen.DOWN, "http_status", "HTTP 500"),
            (2, ME.id, Seen.BLIND, "rate_limited", "HTTP 500"),
        ]
        assert sorted(book.declined) == [3, 4]
        # Polling finds later requests without a wake-up; a wake-up finds them at once.
        book.slots = [Slot(5, 5, "site", definition_hash(site), "host-b:2:b")]
        await clock.advance(2)
        assert book.answered[-1][0] == 5
        book.slots = [Slot(6, 6, "site", definition_hash(site), "host-b:2:b")]
        confirmer.notice("request:6")
        await settle()
        assert book.answered[-1][0] == 6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_definition_hash_ignores_what_does_not_change_the_probe() -> None:
    base = check()
    assert definition_hash(base) == definition_hash(
        check(description="d", tags=["x"], confirm=3, interval="5m", failure_threshold=4)
    )
    assert definition_hash(base) != definition_hash(check(timeout="3s"))
    # Secrets count as their mask: the table never holds a function of them.
    assert definition_hash(check(headers={"Authorization": "Bearer s3cr3t-one"})) == (
        definition_hash(check(headers={"Authorization": "Bearer s3cr3t-two"}))
    )
    assert definition_hash(check(url="http://u:s3cr3t-one@x/")) == (
        definition_hash(check(url="http://u:s3cr3t-two@x/"))
    )
    assert definition_hash(base) != definition_hash(
        HttpCheckConfig(name="site", kind="http", url="http://y").resolved(Defaults())
    )


def test_confirm_in_config_defaults_and_bounds() -> None:
    text = """
defaults: {confirm: 2}
checks:
  - {name: a, kind: http, url: "http://x"}
  - {name: b, kind: http, url: "http://x", confirm: 1}
"""
    config = parse_config(text, "m.yaml", {})
    assert [c.confirm for c in config.checks] == [2, 1]
    for bad in ("0", "6", "two"):
        with pytest.raises(ConfigError) as err:
            parse_config(
                f'checks: [{{name: a, kind: http, url: "http://x", confirm: {bad}}}]',
                "m.yaml",
                {},
            )
        assert "confirm" in str(err.value)


async def test_a_confirmer_that_breaks_loses_no_failure(world, clock) -> None:
    _, manager, handler = world

    async def broken(_config: CheckConfigBase, _result: CheckResult) -> Confirmation:
        raise RuntimeError("bug")

    handler.confirmer = broken
    config = check()
    with capture_logs() as logs:
        await handler(config, run(config, clock, ok=False))
    assert handler.states["site"].state is AlertState.DOWN
    assert len(manager.open_incidents) == 1
    assert handler.last["site"].details["confirmation"]["reason"] == (
        "the confirmation failed: RuntimeError"
    )
    assert "confirmation_failed" in [e["event"] for e in logs]


def answering(book: ConfirmationBook, clock: FakeClock) -> tuple[CheckConfigBase, Confirmer]:
    """A check, and a confirmer over `book` whose probe of it finds it up."""
    site = check()

    async def probe(_name: str, _definition: str) -> tuple[CheckConfigBase, CheckResult]:
        return site, run(site, clock, ok=True)

    return site, Confirmer(book, ME, lambda: 1, clock, probe)


async def test_a_lost_listen_connection_is_retried_and_polling_still_answers(clock) -> None:
    class Deaf(FakeBook):
        listens = 0

        async def listen_confirmations(self, notice: Callable[[str], None]) -> None:
            self.listens += 1
            raise StoreError("postgresql://monitor@db/monitor: listening stopped: gone")

    book = Deaf()
    site, confirmer = answering(book, clock)
    with capture_logs() as logs:
        task = asyncio.create_task(confirmer.run())
        try:
            await settle()
            book.slots = [Slot(1, 1, "site", definition_hash(site), "host-b:2:b")]
            await clock.advance(2)  # the poll finds it
            assert book.answered == [(1, ME.id, Seen.UP, None, "HTTP 200")]
            await clock.advance(10)
            assert book.listens >= 3  # tried again every 5 s
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    failed = [e for e in logs if e["event"] == "confirmation_listen_failed"]
    assert len(failed) == 1  # once per outage


async def test_while_every_wake_up_is_heard_requests_are_polled_seldom(clock) -> None:
    """A store that says it listens (`LISTENING`) is polled every `HEARD_POLL_S`, and a
    request's wake-up is taken at once; when listening breaks, every `poll_s` again."""

    class Listening(FakeBook):
        claims = 0
        cut = asyncio.Event()

        async def claim_confirmation(self, replica: str) -> Slot | None:
            self.claims += 1
            return await super().claim_confirmation(replica)

        async def listen_confirmations(self, notice: Callable[[str], None]) -> None:
            self.notice = notice
            notice(LISTENING)
            await self.cut.wait()
            raise StoreError("postgresql://monitor@db/monitor: listening stopped: gone")

    book = Listening()
    site, confirmer = answering(book, clock)
    task = asyncio.create_task(confirmer.run())
    try:
        await settle()
        start = book.claims
        await clock.advance(HEARD_POLL_S - 1)
        assert book.claims == start  # no poll while every wake-up is heard
        book.slots = [Slot(1, 1, "site", definition_hash(site), "host-b:2:b")]
        book.notice("request:1")
        await settle()
        assert book.answered == [(1, ME.id, Seen.UP, None, "HTTP 200")]
        await clock.advance(HEARD_POLL_S)
        assert book.claims == start + 3  # the wake-up (its slot, then none left), one poll
        book.cut.set()  # the listen connection is lost: polled every 2 s again
        await settle()
        before = book.claims
        await clock.advance(4.5)
        assert book.claims - before >= 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_open_incident_hears_of_a_refuted_down(world, clock) -> None:
    store, manager, handler = world
    book = FakeBook(reply=lambda _r: [answer(Seen.UP, "200 OK in 12 ms")])
    handler.confirmer = fleet(book, clock)
    config = check()
    slow = CheckResult("site", "http", Outcome.DEGRADED, FailureKind.SLOW, "slow: 9 s",
                       clock.now(), 9.0)  # fmt: skip
    await handler(config, slow)
    (incident,) = manager.open_incidents  # degraded pages too under the rule "all"
    await handler(config, run(config, clock, ok=False))
    assert handler.states["site"].state is AlertState.DEGRADED
    (entry,) = [e for e in await store.timeline(incident.id) if e.event == "confirmation"]
    assert entry.text == (
        "refuted: replica host-b:2:b sees it up: 200 OK in 12 ms"
        " (host-a:1:a saw down, host-b:2:b saw up)"
    )
