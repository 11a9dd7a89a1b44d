"""Who pages in a fleet: one replica at a time holds the paging lease.

Replicas sharing one PostgreSQL store all write paging state (an incident opened or
acknowledged on any of them starts or stops its escalation, lifecycle posts go to the
outbox, idempotent by key), but only the holder of the lease runs escalation timers and
sends. The lease is the store's (`Store.acquire_lease`): on PostgreSQL a session advisory
lock on a connection of its own, released by the server the moment the holder's process
dies or its connection is cut, and a fencing token that grows with each new holder. Every
claim of a notification and every escalation step checks the token in its own
transaction, so a deposed leader can neither send nor advance.

`Leadership.run` ticks every `TICK_S` while it leads: it renews (one round trip; a
failure or no answer within the store's lease timeout and it steps down at once), and
between ticks listens for changes told by other replicas (`Store.wait_changes`,
LISTEN/NOTIFY), so it hears of them within milliseconds. A standby asks for the lease
and waits up to `WAIT_S` for it in the same call (on PostgreSQL the server queues it for
the lock, so it takes the lease the moment the holder's session ends), then asks again:
one round trip every `WAIT_S` (3 s), not four tries and four listens a second. Both
tell their subscribers (the pager, the outbox) at least every `RELOAD_S` anyway: the
safety net if a notification is lost.

Escalations started on one replica run on another, so their times must not depend on
either replica's clock: in a fleet the pager and the outbox read the time from a
`FleetClock`, this replica's clock corrected by its offset from the database server's
clock, measured when the lease is first tried and at each periodic reload. A replica
whose clock is ten minutes off starts an escalation that the leader runs on time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from monitor.core.clock import Clock
from monitor.core.errors import StoreError
from monitor.metrics.exporter import Metrics
from monitor.store import Store

__all__ = ["RELOAD_S", "SKEW_WARNING_S", "TICK_S", "WAIT_S", "FleetClock", "Leadership"]

log = structlog.stdlib.get_logger(__name__)

# The leader renews this often (and a standby whose try failed at once tries again): a
# leader cut off learns it within a tick and the store's lease timeout, and every claim
# and escalation step is fenced by its token meanwhile.
TICK_S = 1.0
WAIT_S = 3.0  # a standby waits this long for the lease in each try
RELOAD_S = 5.0  # subscribers reload paging state at least this often
SKEW_WARNING_S = 1.0  # a clock off the database's by more than this is logged
MEASURE_WITHIN = timedelta(milliseconds=200)  # round trips longer than this are not used


class FleetClock:
    """`clock` with its wall time moved by `offset` (the database's time minus ours);
    monotonic time and sleeps are `clock`'s own."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.clock.now() + self.offset

    def monotonic(self) -> float:
        return self.clock.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        await self.clock.sleep_until(deadline)


class Leadership:
    """This replica's part in the paging lease. `token` is set while it leads."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        me: str,
        *,
        tick_s: float = TICK_S,
        wait_s: float = WAIT_S,
        reload_s: float = RELOAD_S,
        fleet_clock: FleetClock | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.fleet_clock = fleet_clock
        self.me = me
        self.tick_s = tick_s
        self.wait_s = wait_s
        self.reload_s = reload_s
        self.token: int | None = None
        self.heard = 0  # changes heard (told by others, or the periodic reload) so far
        self.failing = False
        self._subscribers: list[Callable[[], None]] = []
        self._leader, self._token = metrics.track_leadership()

    @property
    def leading(self) -> bool:
        return self.token is not None

    def subscribe(self, wake: Callable[[], None]) -> None:
        """`wake` is called when leadership changes and when changes are heard."""
        self._subscribers.append(wake)

    def _wake(self) -> None:
        for wake in self._subscribers:
            wake()

    async def tick(self) -> None:
        """One round: the leader renews the lease, a standby tries to take it."""
        if self.token is not None:
            try:
                held = await self.store.renew_lease()
            except StoreError as exc:
                self.lost(str(exc))
                return
            if not held:
                self.lost("the lease is held by another replica or its connection ended")
            return
        try:
            token = await self.store.acquire_lease(self.me, wait_s=self.wait_s)
        except StoreError as exc:
            if not self.failing:
                log.warning("pager_lease_unavailable", replica=self.me, error=str(exc))
            self.failing = True
            return
        if self.failing:
            log.info("pager_lease_available", replica=self.me)
        self.failing = False
        if token is not None:
            self.token = token
            self._leader.set(1)
            self._token.set(token)
            log.warning("pager_leader", replica=self.me, token=token)
            self._wake()

    def lost(self, reason: str) -> None:
        """Steps down at once: nothing more is advanced or claimed under this token."""
        if self.token is None:
            return
        log.warning("pager_lease_lost", replica=self.me, token=self.token, reason=reason)
        self.token = None
        self._leader.set(0)
        self._wake()

    async def poke(self) -> None:
        """Tells the other replicas that paging state changed; a store that is away is no
        error (they reload at least every `reload_s`)."""
        try:
            await self.store.notify_change(self.me)
        except StoreError as exc:
            log.warning("pager_change_not_told", replica=self.me, error=str(exc))

    async def measure_clock(self) -> None:
        """Sets the fleet clock's offset from the database's clock (half the round trip
        taken as the way there); a database that does not answer keeps the last one."""
        if self.fleet_clock is None:
            return
        before = self.clock.now()
        try:
            theirs = await self.store.database_now()
        except StoreError:
            return
        if theirs is None:
            return
        after = self.clock.now()
        if after - before > MEASURE_WITHIN:
            return  # a slow answer (a connection being made) says little of the offset
        offset = theirs - (before + (after - before) / 2)
        big = abs(offset.total_seconds()) > SKEW_WARNING_S
        if big and abs((offset - self.fleet_clock.offset).total_seconds()) > SKEW_WARNING_S:
            log.warning(
                "clock_skew", replica=self.me, behind_database_s=round(offset.total_seconds(), 3)
            )
        self.fleet_clock.offset = offset

    async def run(self) -> None:
        """Ticks and listens until cancelled."""
        await self.measure_clock()
        reloaded = self.clock.monotonic()
        while True:
            started = self.clock.monotonic()
            await self.tick()
            changed = False
            if self.token is None:
                # A standby: its try waited for the lease already (unless the store
                # answered at once: then a tick apart). It has nothing to hear.
                await self.clock.sleep_until(started + self.tick_s)
            else:
                try:
                    changed = await self.store.wait_changes(self.tick_s, self.me)
                except StoreError:
                    await self.clock.sleep_until(started + self.tick_s)
            if changed or self.clock.monotonic() - reloaded >= self.reload_s:
                if not changed:
                    await self.measure_clock()
                reloaded = self.clock.monotonic()
                self.heard_change()

    def heard_change(self) -> None:
        """Another replica changed paging state (or it is time for the periodic reload)."""
        self.heard += 1
        self._wake()

    async def release(self) -> None:
        """Gives the lease up on a clean stop, so a standby takes over at once."""
        self.lost("stopping")
        try:
            await self.store.release_lease()
        except StoreError as exc:
            log.warning("pager_lease_release_failed", replica=self.me, error=str(exc))

    def detail(self) -> dict[str, object]:
        """What `/readyz` says about paging."""
        return {"pager_leader": self.leading, "pager_token": self.token}
