"""Membership: a daemon on a shared PostgreSQL store registers in its `replicas` table
and beats every `BEAT_S`; a replica is live while the database heard from it within
`TTL_S`. Liveness is judged with the database's clock (`now()` in SQL) alone, so a
replica whose own clock is off neither vanishes nor lingers.

The live set is exported as `monitor_replicas_live` and shown in `/readyz`. A beat that
fails (the database is away) leaves this replica knowing of no live replica, itself
included, until the next beat succeeds: it cannot tell who is live. Never fatal.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable

import structlog

from monitor import __version__
from monitor.core.clock import Clock
from monitor.core.errors import StoreError
from monitor.metrics.exporter import Metrics
from monitor.store.replicas import Replica, ReplicaBook, ReplicaId

__all__ = ["BEAT_S", "TTL_S", "Membership", "this_replica"]

log = structlog.stdlib.get_logger(__name__)

BEAT_S = 5.0  # time between two beats of a replica
TTL_S = 15.0  # a replica not heard from for this long (three beats) is gone


def this_replica(ttl_s: float = TTL_S) -> ReplicaId:
    """This process: host, pid and a random part (a restarted pid is a new replica)."""
    host = socket.gethostname()
    pid = os.getpid()
    return ReplicaId(f"{host}:{pid}:{uuid.uuid4().hex[:8]}", host, pid, __version__, ttl_s)


class Membership:
    """Beats for this replica and keeps the live set the database last returned."""

    def __init__(
        self,
        book: ReplicaBook,
        me: ReplicaId,
        clock: Clock,
        metrics: Metrics,
        *,
        beat_s: float = BEAT_S,
    ) -> None:
        self.book = book
        self.me = me
        self.clock = clock
        self.metrics = metrics
        self.beat_s = beat_s
        self.live: list[Replica] = []
        self.failing = False
        self._gauge = metrics.track_replicas()

    async def beat(
        self, via: Callable[[ReplicaId], Awaitable[list[Replica]]] | None = None
    ) -> bool:
        """One beat (`via`: a call that beats and returns the live set as
        `beat_replica` does, carrying more). Returns whether the database took it."""
        try:
            live = await (self.book.beat_replica if via is None else via)(self.me)
        except StoreError as exc:
            self.unreachable(str(exc))
            return False
        if self.failing:
            log.info("replica_beat_recovered", replica=self.me.id)
        self.failing = False
        joined = {r.id for r in live} - {r.id for r in self.live}
        left = {r.id for r in self.live} - {r.id for r in live}
        for rid in sorted(joined - {self.me.id}):
            log.info("replica_joined", replica=rid)
        for rid in sorted(left):
            log.warning("replica_gone", replica=rid)
        self.live = live
        self._gauge.set(len(live))
        return True

    def unreachable(self, error: str) -> None:
        """A beat failed (or never answered): no live set is known until the next one."""
        if not self.failing:
            log.warning("replica_beat_failed", replica=self.me.id, error=error)
        self.failing = True
        self.live = []
        self._gauge.set(0)

    async def run(self) -> None:
        """Beats until cancelled."""
        while True:
            started = self.clock.monotonic()
            await self.beat()
            await self.clock.sleep_until(started + self.beat_s)

    async def leave(self) -> None:
        """Leaves the live set on a clean stop; a database that is away is no error."""
        try:
            await self.book.leave_replica(self.me.id)
        except StoreError as exc:
            log.warning("replica_leave_failed", replica=self.me.id, error=str(exc))

    def detail(self) -> dict[str, object]:
        """What `/readyz` says about the fleet."""
        return {
            "replica": self.me.id,
            "live": len(self.live),
            "replicas": [
                {"id": r.id, "host": r.host, "version": r.version, "age_s": round(r.age_s, 1)}
                for r in self.live
            ],
            "store_reachable": not self.failing,
        }
