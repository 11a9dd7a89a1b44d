"""Time, injected: the only module that reads the wall clock or the loop's clock.

Rules, thresholds and schedules take their time from a `Clock`; tests pass a fake one
and never sleep for real.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Where the monitor gets the time from.

    `monotonic()` drives schedules and durations; `now()` stamps results and incidents.
    """

    def now(self) -> datetime:
        """Returns the current wall time, timezone-aware in UTC."""
        ...

    def monotonic(self) -> float:
        """Returns seconds on a clock that never goes backwards."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Returns once `monotonic()` has reached `deadline`."""
        ...


class SystemClock:
    """The real clock: wall time from the OS, monotonic time from the running loop."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
