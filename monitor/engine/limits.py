"""Bounds on how hard the monitor hits the world: in-flight runs, per host, per second."""

from __future__ import annotations

import asyncio

from asyncio_throttle.throttler import Throttler

from monitor.config.loader import LimitsConfig

__all__ = ["Limiter"]


class Limiter:
    """A global semaphore, one semaphore per target host, and optional request-rate
    throttles per host (asyncio-throttle).

    `reconfigure()` swaps in new bounds on reload; runs already holding a slot release
    it to the semaphore they took it from.
    """

    def __init__(self, limits: LimitsConfig) -> None:
        self._global = asyncio.Semaphore(limits.max_concurrency)
        self._per_host_n = limits.max_per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._rates = self._throttlers(limits)
        self._limits = limits

    @staticmethod
    def _throttlers(limits: LimitsConfig) -> dict[str, Throttler]:
        return {
            r.host: Throttler(rate_limit=r.requests, period=r.per.total_seconds())
            for r in limits.rates
        }

    def reconfigure(self, limits: LimitsConfig) -> None:
        if limits == self._limits:
            return
        self._global = asyncio.Semaphore(limits.max_concurrency)
        self._per_host_n = limits.max_per_host
        self._hosts = {}
        self._rates = self._throttlers(limits)
        self._limits = limits

    def _host(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self._per_host_n)
        return sem

    @property
    def start_rate(self) -> float:
        """First runs per second the scheduler may start with (`limits.start_rate`)."""
        return self._limits.start_rate

    def rates(self) -> dict[str, float]:
        """Requests per second each rate-limited host allows."""
        return {r.host: r.requests / r.per.total_seconds() for r in self._limits.rates}

    def slot(self, host: str) -> _Slot:
        """Held (`async with`) for one attempt against `host`."""
        return _Slot(self._host(host), self._global, self._rates.get(host))


class _Slot:
    """One attempt's hold on its host's and the global semaphore, taken in that order.

    A plain class rather than a generator-based context manager: it is entered on every
    run of every check.
    """

    __slots__ = ("_global", "_host", "_throttler")

    def __init__(
        self, host: asyncio.Semaphore, global_: asyncio.Semaphore, throttler: Throttler | None
    ) -> None:
        self._host, self._global, self._throttler = host, global_, throttler

    async def __aenter__(self) -> None:
        await self._host.acquire()
        try:
            await self._global.acquire()
        except BaseException:
            self._host.release()
            raise
        if self._throttler is not None:
            try:
                async with self._throttler:
                    pass  # the throttler only paces starts; it holds nothing during the run
            except BaseException:
                self._release()
                raise

    async def __aexit__(self, *_exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self._global.release()
        self._host.release()
