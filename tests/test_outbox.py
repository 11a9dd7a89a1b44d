"""Durable delivery under a fake clock: retries, Retry-After, permanent errors, isolation."""

from __future__ import annotations

import asyncio
import random

import pytest

from monitor.model import OutboxItem
from monitor.outbox import Outbox
from tests.fakes import FakeClock, MemoryStore, settle


class Refused(Exception):
    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


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

    async def on_permanent(failed: OutboxItem, message: str) -> None:
        failures.append((failed.key, message))

    outbox = Outbox(store, clock, metrics, deliver, ["slack", "pagerduty"],
                    on_permanent_failure=on_permanent, rng=random.Random(7))  # noqa: S311  # fmt: skip
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
    assert failures == [("k", "404 no_service")]
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


async def test_retry_after_pauses_the_whole_notifier(world, clock) -> None:
    """Slack limits per app and workspace: after a 429 the next message waits too, so a
    page does not overtake the post that was refused (nor draw another 429)."""
    _, outbox, channels, _ = world
    channels["slack"] = Channel(clock, [Refused("429", retry_after_s=30)])
    channels["pagerduty"] = Channel(clock)
    task = await running(outbox)
    await outbox.enqueue([item(clock, "post")])
    await settle()
    await outbox.enqueue([item(clock, "page")])
    await outbox.enqueue([item(clock, "pd", notifier="pagerduty")])
    await clock.advance(29)
    assert channels["slack"].delivered == []  # paused, the new message as well
    assert [p for p, _ in channels["pagerduty"].delivered] == ["payload pd"]  # others go on
    await clock.advance(2)
    assert sorted(p for p, _ in channels["slack"].delivered) == ["payload page", "payload post"]
    assert all(at >= 30 for _, at in channels["slack"].delivered)
    task.cancel()
