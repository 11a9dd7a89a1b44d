"""Time, injected: the only module that reads the wall clock or the loop's clock.

Rules, thresholds and schedules take their time from a `Clock`; tests pass a fake one
and never sleep for real.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["Clock", "SystemClock", "sleep_or_wake"]


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


async def sleep_or_wake(clock: Clock, wake: asyncio.Event, delay_s: float | None) -> None:
    """Returns when `wake` is set or, if `delay_s` is given, once that much clock time has
    passed, whichever comes first. Nothing is left running."""
    tasks: set[asyncio.Future[Any]] = {asyncio.ensure_future(wake.wait())}
    if delay_s is not None:
        tasks.add(asyncio.ensure_future(clock.sleep_until(clock.monotonic() + max(0.0, delay_s))))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
