"""Durable delivery under a fake clock: retries, Retry-After, permanent errors, isolation."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import pytest

from monitor.core.errors import NotifierError
from monitor.core.model import OutboxItem
from monitor.paging.outbox import Outbox
from tests.fakes import FakeClock, MemoryStore, settle


class Refused(NotifierError):
    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after_s=retry_after_s)


class Channel:
    """A notifier stand-in: answers from a script, records what it delivered and when."""

    def __init__(self, clock: FakeClock, script: list[Exception | None] | None = None) -> None:
        self.clock = clock
        self.script = list(script or [])
        self.delivered: list[tuple[str, float]] = []
        self.tries = 0

    async def __call__(self, payload: str) -> None:
        self.tries += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.delivered.append((payload, self.clock.monotonic()))


def item(clock: FakeClock, key: str, notifier: str = "slack") -> OutboxItem:
    now = clock.now()
    return OutboxItem(0, key, notifier, f"payload {key}", now, now)


@pytest.fixture
def world(clock, metrics):
    store = MemoryStore()
    channels: dict[str, Channel] = {}
    failures: list[tuple[str, str]] = []

    async def deliver(notifier: str, payload: str) -> None:
        await channels[notifier](payload)

    async def on_dead(failed: OutboxItem, reason: str) -> None:
        failures.append((failed.key, reason))

    async def on_outage(notifier: str, reason: str) -> None:
        failures.append((f"outage:{notifier}", reason))

    async def on_recovered(notifier: str, since: datetime) -> None:
        failures.append((f"recovered:{notifier}", since.isoformat()))

    outbox = Outbox(store, clock, metrics, deliver, ["slack", "pagerduty"],
                    on_dead_letter=on_dead, on_outage=on_outage, on_recovered=on_recovered,
                    give_up_after={"slack": timedelta(hours=24), "pagerduty": timedelta(hours=1)},
                    alert_after={"pagerduty": timedelta(hours=2)},
                    rng=random.Random(7))  # noqa: S311  # fmt: skip
    return store, outbox, channels, failures


async def running(outbox: Outbox) -> asyncio.Task[None]:
    task = asyncio.create_task(outbox.run())
    await settle()
    return task


async def test_delivers_and_skips_duplicate_keys(world, clock, registry) -> None:
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue(
        [item(clock, "inc1:p0s0"), item(clock, "inc1:p0s0")]
    )  # the same page twice
    await settle()
    assert channels["slack"].delivered == [("payload inc1:p0s0", 0.0)]
    assert (
        registry.get_sample_value(
            "monitor_notifications_total", {"notifier": "slack", "outcome": "sent"}
        )
        == 1
    )
    assert registry.get_sample_value("monitor_outbox_pending") == 0
    task.cancel()


async def test_retries_with_backoff_and_retry_after(world, clock, registry) -> None:
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("502"), Refused("429", retry_after_s=120), None])
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "k")])
    await settle()
    assert channels["slack"].tries == 1
    await clock.advance(2)  # first backoff: 2 s times a jitter in [0.5, 1)
    assert channels["slack"].tries == 2
    await clock.advance(119)
    assert channels["slack"].tries == 2  # Retry-After: 120 s, longer than the backoff
    await clock.advance(2)
    assert channels["slack"].delivered == [
        ("payload k", pytest.approx(channels["slack"].delivered[0][1]))
    ]
    assert channels["slack"].delivered[0][1] >= 121
    assert (
        registry.get_sample_value(
            "monitor_notifications_total", {"notifier": "slack", "outcome": "retried"}
        )
        == 2
    )
    task.cancel()


async def test_a_channel_that_is_down_never_drops_and_never_blocks_others(
    world, clock, registry
) -> None:
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("down")] * 1000)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "a", "slack"), item(clock, "b", "pagerduty")])
    await settle()
    assert [p for p, _ in channels["pagerduty"].delivered] == ["payload b"]
    await clock.advance(6 * 3600)  # hours of outage: backoff is capped at 10 min
    assert channels["slack"].delivered == []
    assert registry.get_sample_value("monitor_outbox_pending") == 1
    channels["slack"].script.clear()  # back up
    await clock.advance(600)
    assert [p for p, _ in channels["slack"].delivered] == ["payload a"]
    task.cancel()


async def test_permanent_errors_stop_and_raise_an_alert(world, clock, registry) -> None:
    _, outbox, channels, failures = world
    channels["slack"] = Channel(clock, [Refused("404 no_service", retryable=False)])
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "k")])
    await settle()
    await clock.advance(3600)
    assert channels["slack"].tries == 1
    assert failures == [
        ("k", "refused permanently: 404 no_service"),
        ("outage:slack", "refused permanently: 404 no_service"),
    ]
    assert (
        registry.get_sample_value(
            "monitor_notifications_total", {"notifier": "slack", "outcome": "failed"}
        )
        == 1
    )
    task.cancel()


async def test_oldest_pending_age(world, clock, registry) -> None:
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("down")] * 10)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "k")])
    await clock.advance(90)
    await outbox.export_depth()
    assert registry.get_sample_value("monitor_outbox_oldest_pending_age_seconds") == pytest.approx(
        90
    )
    task.cancel()


async def test_oldest_pending_age_grows_between_scrapes(world, clock, registry) -> None:
    # Computed when scraped: an outage shows as a growing age, with nothing enqueued or sent.
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("down")] * 100)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "k")])
    await clock.advance(60)
    assert registry.get_sample_value("monitor_outbox_oldest_pending_age_seconds") == 60
    await clock.advance(600)
    assert registry.get_sample_value("monitor_outbox_oldest_pending_age_seconds") == 660
    channels["slack"].script.clear()
    await clock.advance(600)
    assert registry.get_sample_value("monitor_outbox_oldest_pending_age_seconds") == 0
    task.cancel()


async def test_an_incidents_messages_leave_in_the_order_they_were_made(world, clock) -> None:
    _, outbox, channels, _ = world
    # The first message fails once and backs off; the ones made after it wait for it,
    # whatever their own backoff. Another incident's message does not wait.
    channels["slack"] = Channel(clock, [Refused("502")])
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "incident:1:1:post:slack")])
    await settle()
    await outbox.enqueue(
        [item(clock, f"incident:1:1:{k}:slack") for k in ("page", "ack", "resolve")]
        + [item(clock, "incident:2:1:post:slack"), item(clock, "handoff:all:1")]
    )
    await settle()
    assert [p for p, _ in channels["slack"].delivered] == [
        "payload incident:2:1:post:slack",
        "payload handoff:all:1",
    ]
    await clock.advance(2)
    assert [p.removeprefix("payload ") for p, _ in channels["slack"].delivered[2:]] == [
        "incident:1:1:post:slack",
        "incident:1:1:page:slack",
        "incident:1:1:ack:slack",
        "incident:1:1:resolve:slack",
    ]
    task.cancel()


async def test_a_retry_after_pauses_the_whole_notifier(world, clock) -> None:
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("429", retry_after_s=30)])
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "incident:1:1:post:slack")])
    await settle()
    await outbox.enqueue([item(clock, "incident:2:1:post:slack"), item(clock, "b", "pagerduty")])
    await clock.advance(29)
    assert channels["slack"].delivered == []  # not only the message that got the 429
    assert [p for p, _ in channels["pagerduty"].delivered] == ["payload b"]  # others go on
    await clock.advance(2)
    assert [p for p, _ in channels["slack"].delivered] == [
        "payload incident:1:1:post:slack",
        "payload incident:2:1:post:slack",
    ]
    assert all(t >= 30 for _, t in channels["slack"].delivered)
    task.cancel()


async def test_give_up_after_one_outage_alert_and_one_recovery(world, clock, registry) -> None:
    store, outbox, channels, failures = world
    channels["slack"] = Channel(clock)
    channels["pagerduty"] = Channel(clock, [Refused("503")] * 10_000)  # gives up after 1h
    task = await running(outbox)
    await outbox.enqueue([item(clock, "incident:1:1:page:pd", "pagerduty")])
    await clock.advance(30 * 60)
    await outbox.enqueue([item(clock, "incident:2:1:page:pd", "pagerduty")])
    await clock.advance(30 * 60)
    # At one hour exactly, not a backoff later: a dead letter, and the outage is reported.
    assert failures == [
        ("incident:1:1:page:pd", "undelivered after 1h00m: 503"),
        ("outage:pagerduty", "undelivered after 1h00m: 503"),
    ]
    await clock.advance(2 * 3600)
    # The second message gives up too: its own dead letter, no second outage alert.
    assert failures[2:] == [("incident:2:1:page:pd", "undelivered after 1h00m: 503")]
    assert [i.status for i in store.outbox.values()] == ["failed", "failed"]
    assert registry.get_sample_value("monitor_outbox_pending") == 0
    channels["pagerduty"].script.clear()  # back
    await outbox.enqueue([item(clock, "incident:3:1:page:pd", "pagerduty")])
    await outbox.enqueue([item(clock, "incident:4:1:page:pd", "pagerduty")])
    await settle()
    assert len(channels["pagerduty"].delivered) == 2
    assert [k for k, _ in failures[3:]] == ["recovered:pagerduty"]  # once
    task.cancel()


async def test_permanent_refusals_make_one_outage_not_one_alert_each(world, clock) -> None:
    _, outbox, channels, failures = world
    channels["slack"] = Channel(clock, [Refused("400 invalid_payload", retryable=False)] * 5)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, f"incident:{n}:1:post:slack") for n in range(5)])
    await settle()
    assert channels["slack"].tries == 5
    assert [k for k, _ in failures].count("outage:slack") == 1
    assert len(failures) == 6  # five dead letters, one outage
    task.cancel()


async def test_an_outage_survives_a_restart(clock, metrics) -> None:
    # Reported before the restart: not reported again, and its end is still announced.
    store = MemoryStore()
    heard: list[str] = []
    channel = Channel(clock, [Refused("404", retryable=False)])

    async def deliver(notifier: str, payload: str) -> None:
        await channel(payload)

    async def outage(notifier: str, reason: str) -> None:
        heard.append(f"outage:{notifier}")

    async def recovered(notifier: str, since: datetime) -> None:
        heard.append(f"recovered:{notifier}")

    def make() -> Outbox:
        return Outbox(store, clock, metrics, deliver, ["slack"], on_outage=outage,
                      on_recovered=recovered)  # fmt: skip

    first = make()
    task = await running(first)
    await first.enqueue([item(clock, "a")])
    await settle()
    task.cancel()
    second = make()
    task = await running(second)
    await second.enqueue([item(clock, "b")])
    await settle()
    assert heard == ["outage:slack", "recovered:slack"]
    task.cancel()


async def test_a_notifier_failing_for_alert_after_is_reported_once(world, clock) -> None:
    # Hours before anything gives up, a channel that keeps failing is reported (default
    # alert_after: 10 minutes), once, and its recovery too.
    _, outbox, channels, failures = world
    channels["slack"] = Channel(clock, [Refused("503")] * 10_000)
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "incident:1:1:post:slack")])
    await clock.advance(9 * 60)
    assert failures == []
    await outbox.enqueue([item(clock, "incident:2:1:post:slack")])
    await clock.advance(60 * 60)
    [(what, reason)] = failures
    assert what == "outage:slack"
    assert reason.startswith("undelivered for 1")  # the first retry after 10 minutes
    assert reason.endswith(": 503")
    channels["slack"].script.clear()
    await clock.advance(15 * 60)
    assert len(channels["slack"].delivered) == 2
    assert [k for k, _ in failures] == ["outage:slack", "recovered:slack"]
    task.cancel()
