"""Bounds on how hard the monitor hits the world: in-flight runs, per host, per second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncio_throttle.throttler import Throttler

from monitor.config import LimitsConfig

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

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Held for one attempt against `host`."""
        global_sem, host_sem = self._global, self._host(host)
        throttler = self._rates.get(host)
        async with host_sem, global_sem:
            if throttler is not None:
                async with throttler:
                    pass  # the throttler only paces starts; it holds nothing during the run
            yield
