"""Durable delivery: every notification is in the store before it is sent.

One worker per notifier, so a notifier that is down delays only its own notifications
and never blocks probes or the other notifiers. Retries back off exponentially with
jitter (capped) and honour Retry-After. Nothing is stored as in flight: after a crash, what
was being sent is sent again, with the same idempotency key.

Order: the messages of one incident through one notifier leave in the order they were
made. Only the oldest pending one of each incident (keys `incident:<id>:…`) is tried;
the others wait behind it whatever their own backoff, so a channel back from an outage
hears post, page, acknowledge, resolve in that order. Messages about no incident
(handoffs, alerts about the monitor) wait for nothing.

Pauses: a `Retry-After` holds the whole notifier (every pending message), not only the
message that got it; channels limit per app or workspace, not per message.

Giving up: a message still undelivered `give_up_after` after it was made, or refused
permanently, becomes a dead letter (`on_dead_letter`: a line on its incident's
timeline). A notifier's outage starts with its first dead letter, or when a message it
fails is `alert_after` old (`on_outage`: one alert on the other channels, however many
messages fail); its next delivery ends it (`on_recovered`). The outage is kept in the store, so a restart neither repeats the
alert nor forgets the recovery notice.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from monitor.core.clock import Clock, sleep_or_wake
from monitor.core.errors import MonitorError, NotifierError
from monitor.core.model import OutboxItem, OutboxStatus
from monitor.metrics.exporter import Metrics
from monitor.paging.leader import Leadership
from monitor.store import Store

__all__ = ["DEFAULT_ALERT_AFTER", "DEFAULT_GIVE_UP_AFTER", "Deliver", "Outbox", "incident_of"]

log = structlog.stdlib.get_logger(__name__)

# Sends one notification (the outbox payload) through the named notifier. Raising
# marks a failed attempt; a `MonitorError` whose type says `retryable = False` is
# permanent, and a `NotifierError`'s `retry_after_s` (when set) is the least wait before
# the next attempt.
Deliver = Callable[[str, str], Awaitable[None]]
DeadLetter = Callable[[OutboxItem, str], Awaitable[None]]
Outage = Callable[[str, str], Awaitable[None]]
Recovered = Callable[[str, datetime], Awaitable[None]]

DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_ALERT_AFTER = timedelta(minutes=10)
_OUTAGE = "outbox:outage:"  # kv: notifier → {"since": iso, "reason": text}
_BATCH = 50


def incident_of(key: str) -> int | None:
    """The incident a notification belongs to, from its key (`incident:<id>:…`)."""
    parts = key.split(":", 2)
    if len(parts) == 3 and parts[0] == "incident" and parts[1].isdigit():
        return int(parts[1])
    return None


class Outbox:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        deliver: Deliver,
        notifiers: Sequence[str],
        *,
        on_dead_letter: DeadLetter | None = None,
        on_outage: Outage | None = None,
        on_recovered: Recovered | None = None,
        give_up_after: Mapping[str, timedelta] | None = None,
        alert_after: Mapping[str, timedelta] | None = None,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
        send_timeout_s: float = 30.0,
        rng: random.Random | None = None,
        lead: Leadership | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.deliver = deliver
        self.notifiers = list(notifiers)
        self.on_dead_letter = on_dead_letter
        self.on_outage = on_outage
        self.on_recovered = on_recovered
        self.give_up_after = dict(give_up_after or {})
        self.alert_after = dict(alert_after or {})
        self.in_flight: set[int] = set()  # ids being sent right now
        self._paused_until: dict[str, datetime] = {}
        self._outages: dict[str, datetime] = {}  # notifier → when its outage started
        self._oldest: datetime | None = None
        metrics.outbox_oldest_age.set_function(self._oldest_age)
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.send_timeout_s = send_timeout_s
        self.rng = rng or random.Random()  # noqa: S311  jitter, not secrets
        self._wake = {name: asyncio.Event() for name in self.notifiers}
        # In a fleet, only the holder of the paging lease sends, each notification
        # claimed under its fencing token first (`Store.claim_notifications`).
        self.lead = lead
        self._led = False
        if lead is not None:
            lead.subscribe(self.wake)

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
        await self._load_outages()
        await self.export_depth()
        async with asyncio.TaskGroup() as tg:
            for name in self.notifiers:
                tg.create_task(self._worker(name), name=f"outbox:{name}")

    async def _load_outages(self) -> None:
        self._outages = {}
        for key, value in (await self.store.kv_prefix(_OUTAGE)).items():
            try:
                self._outages[key.removeprefix(_OUTAGE)] = datetime.fromisoformat(
                    json.loads(value)["since"]
                )
            except (ValueError, KeyError, TypeError):
                log.warning("outbox_outage_unreadable", key=key)

    async def drain_once(self, notifier: str) -> int:
        """Attempts every notification of `notifier` that is due now and first in its
        incident's line; returns how many."""
        if self.lead is not None:
            return await self._drain_claimed(notifier)
        attempted = 0
        for item in self._heads(await self.store.pending_notifications(notifier)):
            if self._paused(notifier) is not None:
                break
            if item.next_attempt_at <= self.clock.now():
                await self._attempt(item)
                attempted += 1
                if attempted >= _BATCH:
                    break
        return attempted

    async def _drain_claimed(self, notifier: str) -> int:
        """In a fleet: claims the next notification that may go and sends it, one at a
        time, each claim one statement that reads, fences and claims
        (`Store.claim_due`): a deposed leader sends nothing claimed after its fall."""
        assert self.lead is not None  # noqa: S101  called in a fleet only
        attempted = 0
        while attempted < _BATCH and self._paused(notifier) is None:
            token = self.lead.token
            if token is None:
                break
            claimed = await self.store.claim_due(notifier, self.clock.now(), token, 1)
            if claimed is None:
                self.lead.lost("the fencing token was refused")
                break
            if not claimed:
                break
            await self._attempt(claimed[0], depth=False)
            attempted += 1
        if attempted:
            await self.export_depth()  # once for the batch, after its sends
        return attempted

    async def next_attempt_at(self, notifier: str) -> datetime | None:
        """When the worker of `notifier` has something to try next (None: nothing)."""
        heads = self._heads(await self.store.pending_notifications(notifier))
        if not heads:
            return None
        due = min(i.next_attempt_at for i in heads)
        paused = self._paused(notifier)
        return due if paused is None else max(due, paused)

    @staticmethod
    def _heads(pending: Sequence[OutboxItem]) -> list[OutboxItem]:
        """The messages that may go now: the oldest pending one of each incident, and
        every message about no incident."""
        seen: set[int] = set()
        heads = []
        for item in pending:  # oldest first
            incident = incident_of(item.key)
            if incident is not None:
                if incident in seen:
                    continue
                seen.add(incident)
            heads.append(item)
        return heads

    def _paused(self, notifier: str) -> datetime | None:
        until = self._paused_until.get(notifier)
        if until is not None and until <= self.clock.now():
            del self._paused_until[notifier]
            return None
        return until

    async def _worker(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            wake.clear()
            if self.lead is not None:
                if not self.lead.leading:
                    self._led = False
                    await sleep_or_wake(self.clock, wake, None)  # the lease's holder sends
                    continue
                if not self._led:
                    # The outages the previous leader reported, so none is told twice.
                    self._led = True
                    await self._load_outages()
            if await self.drain_once(name):
                continue
            due = await self.next_attempt_at(name)
            delay = None if due is None else max(0.0, (due - self.clock.now()).total_seconds())
            await sleep_or_wake(self.clock, wake, delay)

    async def _attempt(self, item: OutboxItem, *, depth: bool = True) -> None:
        """Sends `item` and records how it went; `depth`: the queue's depth exported after
        a send (else the caller does, once for several)."""
        now = self.clock.now()
        self.in_flight.add(item.id)
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await self.deliver(item.notifier, item.payload)
        except Exception as exc:  # noqa: BLE001  a notifier's failure is data, never a crash
            await self._failed(item, exc)
            return
        finally:
            self.in_flight.discard(item.id)
        sent = replace(
            item, status=OutboxStatus.SENT, attempts=item.attempts + 1, sent_at=now, last_error=""
        )
        await self.store.update_notification(sent)
        self.metrics.notifications.labels(item.notifier, "sent").inc()
        self.metrics.delivery_latency.labels(item.notifier).observe(
            max(0.0, (now - item.created_at).total_seconds())
        )
        log.info("notification_sent", notifier=item.notifier, key=item.key, attempts=sent.attempts)
        if depth:
            await self.export_depth()
        if (since := self._outages.pop(item.notifier, None)) is not None:
            await self.store.kv_delete([_OUTAGE + item.notifier])
            log.warning("notifier_recovered", notifier=item.notifier, since=since.isoformat())
            if self.on_recovered is not None:
                await self.on_recovered(item.notifier, since)

    async def _failed(self, item: OutboxItem, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        # The error's type says whether trying again can help; timeouts and unknown errors
        # (not a MonitorError) retry.
        retryable = exc.retryable if isinstance(exc, MonitorError) else True
        attempts = item.attempts + 1
        now = self.clock.now()
        give_up_at = item.created_at + self.give_up_after.get(item.notifier, DEFAULT_GIVE_UP_AFTER)
        if not retryable or now >= give_up_at:
            reason = (
                f"refused permanently: {message}"
                if not retryable
                else f"undelivered after {_span(now - item.created_at)}: {message}"
            )
            await self._dead(
                replace(item, status=OutboxStatus.FAILED, attempts=attempts, last_error=message),
                reason,
            )
            return
        backoff = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempts - 1))
        backoff *= 0.5 + self.rng.random() / 2  # jitter: retries of many items do not align
        retry_after = exc.retry_after_s if isinstance(exc, NotifierError) else None
        if isinstance(retry_after, int | float) and retry_after > 0:
            # The channel asked the whole notifier to wait, not only this message.
            until = now + timedelta(seconds=float(retry_after))
            self._paused_until[item.notifier] = max(
                until, self._paused_until.get(item.notifier, until)
            )
            backoff = max(backoff, float(retry_after))
            log.warning("notifier_paused", notifier=item.notifier, retry_after_s=float(retry_after))
        # The last attempt is made when the message gives up, not a backoff after it.
        next_at = min(now + timedelta(seconds=backoff), give_up_at)
        later = replace(item, attempts=attempts, last_error=message, next_attempt_at=next_at)
        await self.store.update_notification(later)
        self.metrics.notifications.labels(item.notifier, "retried").inc()
        log.warning("notification_retry", notifier=item.notifier, key=item.key, attempts=attempts,
                    retry_in_s=round((next_at - now).total_seconds(), 1), error=message)  # fmt: skip
        failing_for = now - item.created_at
        if failing_for >= self.alert_after.get(item.notifier, DEFAULT_ALERT_AFTER):
            await self._outage(
                item.notifier, item.created_at, f"undelivered for {_span(failing_for)}: {message}"
            )

    async def _dead(self, failed: OutboxItem, reason: str) -> None:
        """A dead letter: stored as failed, told to its incident, maybe an outage."""
        await self.store.update_notification(failed)
        self.metrics.notifications.labels(failed.notifier, "failed").inc()
        log.error("notification_failed", notifier=failed.notifier, key=failed.key, error=reason)
        await self.export_depth()
        if self.on_dead_letter is not None:
            await self.on_dead_letter(failed, reason)
        await self._outage(failed.notifier, self.clock.now(), reason)

    async def _outage(self, notifier: str, since: datetime, reason: str) -> None:
        """Reports the notifier's outage once, however many messages it fails."""
        if notifier in self._outages:
            return
        self._outages[notifier] = since
        await self.store.kv_set(
            _OUTAGE + notifier, json.dumps({"since": since.isoformat(), "reason": reason})
        )
        log.error("notifier_outage", notifier=notifier, error=reason)
        if self.on_outage is not None:
            await self.on_outage(notifier, reason)

    def in_outage(self, notifier: str) -> bool:
        return notifier in self._outages

    @property
    def outages(self) -> tuple[str, ...]:
        """The notifiers in an outage now."""
        return tuple(self._outages)

    async def export_depth(self) -> None:
        pending, oldest = await self.store.outbox_depth()
        self.metrics.outbox_depth.set(pending)
        self._oldest = oldest

    def _oldest_age(self) -> float:
        """`monitor_outbox_oldest_pending_age_seconds`, computed when it is scraped."""
        if self._oldest is None:
            return 0.0
        return max(0.0, (self.clock.now() - self._oldest).total_seconds())


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
