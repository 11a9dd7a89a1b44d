"""Test doubles: a clock that only moves when told to, and helpers around it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock", "settle"]


async def settle(rounds: int = 50) -> None:
    """Lets every ready callback run (a few loop iterations)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """A `Clock` whose time moves only in `advance()`; sleepers wake in deadline order."""

    def __init__(self, start: datetime = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)) -> None:
        self._wall0 = start
        self._t = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._t:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Moves time forward, waking each sleeper at its own deadline in turn."""
        target = self._t + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
                await settle()
        self._t = target
        await settle()
