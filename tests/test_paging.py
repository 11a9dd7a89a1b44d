"""The pager under a fake clock: who gets paged when, ack stops it, restarts change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from monitor.core.alertstate import AlertState
from monitor.core.model import (
    CheckResult,
    FailureKind,
    Outcome,
    Severity,
    Suppression,
    SuppressionKind,
)
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.paging.escalation import EscalationConfig
from monitor.paging.oncall import OnCallConfig
from monitor.paging.outbox import Outbox
from monitor.paging.pager import Pager, from_payload
from tests.fakes import FakeClock, MemoryStore, settle

ONCALL = OnCallConfig.model_validate({
    "people": [{"name": "alice", "pagerduty": "KEY-A"}, {"name": "bob"}],
    "rotations": [{"name": "all", "window": "00:00-00:00", "members": ["alice", "bob"], "start": "2026-11-02"}],
})  # fmt: skip
ESCALATION = EscalationConfig.model_validate({
    "channel": "slack",
    "page_via": ["pd"],
    "ack_timeout": "30m",
    "policies": {"default": {
        "steps": [{"post": "slack"}, {"page": "primary"}, {"wait": "10m"}, {"page": "secondary"}, {"wait": "10m"}],
        "repeat": 1, "repeat_from": 1,
    }},
})  # fmt: skip


class World:
    def __init__(
        self,
        clock: FakeClock,
        metrics,
        store: MemoryStore | None = None,
        escalation: EscalationConfig = ESCALATION,
        types: dict[str, str] | None = None,
    ) -> None:
        self.clock = clock
        self.down: set[str] = set()  # notifiers that fail every attempt
        self.texts: list[tuple[str, str, str]] = []  # (notifier, event, text) delivered
        types = types or {"slack": "slack", "pd": "pagerduty"}
        self.store = store or MemoryStore()
        self.sent: list[
            tuple[float, str, str, tuple[str, ...]]
        ] = []  # (minute, notifier, event, names)
        self.manager = IncidentManager(self.store, clock, metrics, cooldown=timedelta(minutes=30))

        async def deliver(notifier: str, payload: str) -> None:
            if notifier in self.down:
                raise ConnectionError(f"{notifier} unreachable")
            n = from_payload(payload)
            self.texts.append((notifier, n.event.value, n.text))
            self.sent.append(
                (
                    clock.monotonic() / 60,
                    notifier,
                    n.event.value,
                    tuple(r.name for r in n.recipients),
                )
            )

        self.outbox = Outbox(self.store, clock, metrics, deliver, list(types))
        self.pager = Pager(self.store, clock, self.manager, self.outbox, escalation, ONCALL,
                           types)  # fmt: skip

    async def start(self) -> list[asyncio.Task[None]]:
        await self.manager.load()
        await self.pager.load()
        tasks = [asyncio.create_task(self.outbox.run()), asyncio.create_task(self.pager.run())]
        await settle()
        return tasks

    async def fail(self) -> int:
        result = CheckResult(
            "docs", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503", self.clock.now(), 0.1
        )
        incident = await self.manager.on_check(CheckEvent(
            check="docs", key="docs", title="docs is down", result=result, state=AlertState.DOWN,
            previous=AlertState.UP, severity=Severity.P1, rule="r",
        ))  # fmt: skip
        assert incident is not None
        await settle()
        return incident.id

    def pages(self) -> list[tuple[float, tuple[str, ...]]]:
        return [(m, names) for m, n, e, names in self.sent if n == "pd" and e == "trigger"]


async def stop(tasks) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_pages_in_order_until_the_policy_ends(clock, metrics) -> None:
    w = World(clock, metrics)
    tasks = await w.start()
    await w.fail()
    await clock.advance(60 * 60)
    assert w.pages() == [(0, ("alice",)), (10, ("bob",)), (20, ("alice",)), (30, ("bob",))]
    assert [(m, n, e) for m, n, e, _ in w.sent if n == "slack"] == [(0, "slack", "trigger")]
    await stop(tasks)


async def test_ack_stops_paging_and_is_posted(clock, metrics) -> None:
    w = World(clock, metrics)
    tasks = await w.start()
    incident_id = await w.fail()
    await clock.advance(5 * 60)
    await w.manager.acknowledge(incident_id, "alice")
    await clock.advance(30 * 60 - 1)
    assert w.pages() == [(0, ("alice",))]
    assert (5, "slack", "acknowledge", ()) in w.sent
    assert (5, "pd", "acknowledge", ()) in w.sent  # PagerDuty follows the incident's life
    # Acknowledged and not resolved for 30 minutes: paging starts again.
    await clock.advance(2)
    assert w.store.incidents[incident_id].status.value == "triggered"
    await clock.advance(60)
    minute, names = w.pages()[1]
    assert (round(minute), names) == (35, ("alice",))
    await w.manager.resolve(incident_id, "alice")
    await settle()
    assert w.sent[-1][1:3] in {("slack", "resolve"), ("pd", "resolve")}
    await stop(tasks)


async def test_a_restart_mid_escalation_keeps_times_and_pages_nobody_twice(clock, metrics) -> None:
    first = World(clock, metrics)
    tasks = await first.start()
    await first.fail()
    await clock.advance(12 * 60)  # alice at 0, bob at 10
    await stop(tasks)  # the process dies
    await clock.advance(20 * 60)  # down for 20 minutes
    second = World(clock, metrics, store=first.store)
    second.sent = first.sent  # the same receivers
    tasks = await second.start()
    await clock.advance(60)
    # The step due at 20 happens at once after the restart, then the plan goes on.
    assert second.pages() == [(0, ("alice",)), (10, ("bob",)), (32, ("alice",)), (32, ("bob",))]
    keys = [i.key for i in second.store.outbox.values()]
    assert len(keys) == len(set(keys))
    await stop(tasks)


async def test_suppressed_incidents_page_nobody(clock, metrics) -> None:
    w = World(clock, metrics)
    tasks = await w.start()
    result = CheckResult(
        "docs", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503", clock.now(), 0.1
    )
    await w.manager.on_check(CheckEvent(
        check="docs", key="docs", title="docs is down", result=result, state=AlertState.DOWN,
        previous=AlertState.UP, severity=Severity.P1, rule="r", suppressed=Suppression(SuppressionKind.MAINTENANCE, "maintenance 'x' until …"),
    ))  # fmt: skip
    await clock.advance(60 * 60)
    assert w.sent == []
    await stop(tasks)


async def test_reassigning_pages_the_new_owner(clock, metrics) -> None:
    w = World(clock, metrics)
    tasks = await w.start()
    incident_id = await w.fail()
    await w.manager.acknowledge(incident_id, "alice")
    await w.manager.assign(incident_id, "bob", "alice")
    await settle()
    assert (0, "pd", "reassign", ("bob",)) in w.sent
    assert (0, "slack", "reassign", ()) in w.sent  # and the channel hears of it
    await stop(tasks)


async def test_handoff_summary_goes_to_the_channel(clock, metrics) -> None:
    oncall = OnCallConfig.model_validate({
        "people": [{"name": "alice"}, {"name": "bob"}],
        "rotations": [
            {"name": "day", "window": "12:00-13:00", "members": ["alice"], "start": "2026-11-02"},
            {"name": "night", "window": "13:00-12:00", "members": ["bob"], "start": "2026-11-02"},
        ],
    })  # fmt: skip
    w = World(clock, metrics)
    w.pager.oncall = oncall
    tasks = await w.start()  # the fake clock starts at 12:00 UTC
    await w.fail()
    await clock.advance(60 * 60)  # 13:00: night takes over
    handoff = [(m, n) for m, n, e, _ in w.sent if e == "handoff"]
    assert handoff == [(60, "slack")]
    payloads = [
        from_payload(i.payload) for i in w.store.outbox.values() if i.key.startswith("handoff:")
    ]
    assert payloads[0].text.splitlines() == [
        "On call now (night): primary bob, secondary nobody.",
        "#1 P1 triggered: docs is down (owner: bob)",
    ]
    await stop(tasks)


async def test_a_drill_pages_for_real_says_so_and_ends_itself(clock, metrics) -> None:
    w = World(clock, metrics)
    payloads: list[bool] = []
    deliver = w.outbox.deliver

    async def record(notifier: str, payload: str) -> None:
        payloads.append(from_payload(payload).drill)
        await deliver(notifier, payload)

    w.outbox.deliver = record
    w.pager.drill_duration = timedelta(minutes=15)
    tasks = await w.start()
    drill = await w.manager.drill(Severity.P1, "alice")
    await settle()
    await clock.advance(14 * 60)
    assert w.pages() == [(0, ("alice",)), (10, ("bob",))]
    assert w.store.incidents[drill.id].status.value == "triggered"
    await clock.advance(61)
    assert w.store.incidents[drill.id].status.value == "resolved"
    assert payloads
    assert all(payloads)  # every message is labelled DRILL
    events = [e.text for e in w.store.entries if e.incident_id == drill.id]
    assert events[0] == "drill started by alice"
    assert events[-1] == "resolved by monitor: the drill is over"
    await stop(tasks)


async def test_pages_held_by_an_outage_are_summarized_not_sent_after_the_ack(
    clock, metrics
) -> None:
    w = World(clock, metrics)
    w.down.add("pd")
    tasks = await w.start()
    incident_id = await w.fail()
    await clock.advance(12 * 60)  # alice paged at 0, bob at 10: neither delivered
    await w.manager.acknowledge(incident_id, "carol")
    await settle()
    w.down.clear()
    await clock.advance(15 * 60)  # within ack_timeout (30m)
    # Nobody is @mentioned for an acknowledged incident; the channel hears what it missed.
    assert w.pages() == []
    [(notifier, event, text)] = [t for t in w.texts if t[0] == "pd"]
    assert (notifier, event) == ("pd", "acknowledge")
    assert "While this channel was unreachable, 2 pages were not sent (now acknowledged)" in text
    assert "12:00:00 UTC page to alice" in text
    assert "12:10:00 UTC page to bob" in text
    statuses = sorted(i.status for i in w.store.outbox.values() if i.notifier == "pd")
    assert statuses == ["sent", "superseded", "superseded"]
    notes = [
        e.text
        for e in await w.manager.store.timeline(incident_id)
        if e.event == "notification_superseded"
    ]
    assert notes == [
        "not sent via pd (unreachable until acknowledged): 12:00:00 UTC page to alice; "
        "12:10:00 UTC page to bob; summarized in the acknowledge message"
    ]
    # The channel, which was up, got its post and the acknowledgement, in that order.
    assert [e for n, e, _ in w.texts if n == "slack"] == ["trigger", "acknowledge"]
    await stop(tasks)


async def test_a_channel_back_after_ack_and_resolve_hears_them_in_order(clock, metrics) -> None:
    w = World(clock, metrics)
    w.down.update({"slack", "pd"})
    tasks = await w.start()
    incident_id = await w.fail()
    await clock.advance(11 * 60)
    await w.manager.acknowledge(incident_id, "alice")
    await clock.advance(60)
    await w.manager.resolve(incident_id, "alice")
    await settle()
    w.down.clear()
    await clock.advance(20 * 60)
    assert [e for n, e, _ in w.texts if n == "slack"] == ["trigger", "acknowledge", "resolve"]
    assert [e for n, e, _ in w.texts if n == "pd"] == ["acknowledge", "resolve"]
    await stop(tasks)


async def test_webhook_and_email_in_page_via_hear_acknowledge_and_resolve(clock, metrics) -> None:
    escalation = EscalationConfig.model_validate({
        "channel": "slack", "page_via": ["hook", "mail"],
        "policies": {"default": {"steps": [{"post": "slack"}, {"page": "primary"}]}},
    })  # fmt: skip
    types = {"slack": "slack", "hook": "webhook", "mail": "email", "other": "webhook"}
    w = World(clock, metrics, escalation=escalation, types=types)
    tasks = await w.start()
    incident_id = await w.fail()
    await w.manager.acknowledge(incident_id, "alice")
    await w.manager.resolve(incident_id, "alice")
    await settle()
    for via in ("hook", "mail"):
        assert [e for n, e, _ in w.texts if n == via] == ["trigger", "acknowledge", "resolve"]
    assert [t for t in w.texts if t[0] == "other"] == []  # pages nothing, follows nothing
    await stop(tasks)
