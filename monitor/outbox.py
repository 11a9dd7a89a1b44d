"""Durable delivery: every notification is in the store before it is sent.

One worker per notifier, so a notifier that is down delays only its own notifications
and never blocks probes or the other notifiers. Retries back off exponentially with
jitter (capped) and honour Retry-After, which pauses the whole notifier (a channel's
limit is per app or workspace, not per message); a permanent error stops the retries and is
reported through `on_permanent_failure` (an alert about the monitor itself on the other
channels). Nothing is marked in flight: after a crash, what was being sent is sent again,
with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from monitor.clock import Clock, sleep_or_wake
from monitor.metrics import Metrics
from monitor.model import OutboxItem
from monitor.store import Store

__all__ = ["Deliver", "Outbox"]

log = structlog.stdlib.get_logger(__name__)

# Sends one notification (the outbox payload) through the named notifier. Raising
# marks a failed attempt; an exception with `retryable = False` is permanent, and
# `retry_after_s` (when set) is the least wait before the next attempt.
Deliver = Callable[[str, str], Awaitable[None]]
PermanentFailure = Callable[[OutboxItem, str], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        deliver: Deliver,
        notifiers: Sequence[str],
        *,
        on_permanent_failure: PermanentFailure | None = None,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
        send_timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.deliver = deliver
        self.notifiers = list(notifiers)
        self.on_permanent_failure = on_permanent_failure
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.send_timeout_s = send_timeout_s
        self.rng = rng or random.Random()  # noqa: S311  jitter, not secrets
        self._wake = {name: asyncio.Event() for name in self.notifiers}
        # Notifier → until when it asked (Retry-After) to be left alone.
        self._paused: dict[str, datetime] = {}

    def wake(self, notifiers: Sequence[str] | None = None) -> None:
        """Tells the workers that new notifications may be due."""
        for name in notifiers or self.notifiers:
            if (event := self._wake.get(name)) is not None:
                event.set()

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        await self.store.enqueue(items)
        await self.export_depth()
        self.wake([i.notifier for i in items])

    async def run(self) -> None:
        """Runs one worker per notifier until cancelled."""
        await self.export_depth()
        async with asyncio.TaskGroup() as tg:
            for name in self.notifiers:
                tg.create_task(self._worker(name), name=f"outbox:{name}")

    async def drain_once(self, notifier: str) -> int:
        """Attempts every notification of `notifier` that is due now; returns how many."""
        if self._pause_left(notifier) > 0:
            return 0
        items = await self.store.due_notifications(notifier, self.clock.now(), 50)
        for n, item in enumerate(items, 1):
            await self._attempt(item)
            if self._pause_left(notifier) > 0:
                return n  # the channel asked for a pause: the rest waits with it
        return len(items)

    def _pause_left(self, notifier: str) -> float:
        until = self._paused.get(notifier)
        return 0.0 if until is None else (until - self.clock.now()).total_seconds()

    async def _worker(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            wake.clear()
            if await self.drain_once(name):
                continue
            due = await self.store.next_notification_at(name)
            delay = None if due is None else max(0.0, (due - self.clock.now()).total_seconds())
            if delay is not None:
                delay = max(delay, self._pause_left(name))
            await sleep_or_wake(self.clock, wake, delay)

    async def _attempt(self, item: OutboxItem) -> None:
        now = self.clock.now()
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self.deliver(item.notifier, item.payload)
        except Exception as exc:  # noqa: BLE001  a notifier's failure is data, never a crash
            await self._failed(item, exc)
            return
        sent = replace(item, status="sent", attempts=item.attempts + 1, sent_at=now, last_error="")
        await self.store.update_notification(sent)
        self.metrics.notifications.labels(item.notifier, "sent").inc()
        self.metrics.delivery_latency.labels(item.notifier).observe(
            max(0.0, (now - item.created_at).total_seconds())
        )
        log.info("notification_sent", notifier=item.notifier, key=item.key, attempts=sent.attempts)
        await self.export_depth()

    async def _failed(self, item: OutboxItem, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        retryable = bool(getattr(exc, "retryable", True))  # timeouts and unknown errors retry
        attempts = item.attempts + 1
        if not retryable:
            failed = replace(item, status="failed", attempts=attempts, last_error=message)
            await self.store.update_notification(failed)
            self.metrics.notifications.labels(item.notifier, "failed").inc()
            log.error("notification_failed", notifier=item.notifier, key=item.key, error=message)
            await self.export_depth()
            if self.on_permanent_failure is not None:
                await self.on_permanent_failure(failed, message)
            return
        backoff = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempts - 1))
        backoff *= 0.5 + self.rng.random() / 2  # jitter: retries of many items do not align
        retry_after = getattr(exc, "retry_after_s", None)
        delay = (
            max(backoff, float(retry_after)) if isinstance(retry_after, int | float) else backoff
        )
        if isinstance(retry_after, int | float) and retry_after > 0:
            self._paused[item.notifier] = self.clock.now() + timedelta(seconds=float(retry_after))
        later = replace(
            item, attempts=attempts, last_error=message,
            next_attempt_at=self.clock.now() + timedelta(seconds=delay),
        )  # fmt: skip
        await self.store.update_notification(later)
        self.metrics.notifications.labels(item.notifier, "retried").inc()
        log.warning("notification_retry", notifier=item.notifier, key=item.key, attempts=attempts,
                    retry_in_s=round(delay, 1), error=message)  # fmt: skip

    async def export_depth(self) -> None:
        pending, oldest = await self.store.outbox_depth()
        self.metrics.outbox_depth.set(pending)
        age = (self.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.outbox_oldest_age.set(max(0.0, age))
