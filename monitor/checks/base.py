"""The check seam: what a kind implements and what it is given. How errors map to
failure kinds is `checks.failures` (`classify_exception` is re-exported here).

A kind is one module with a config model (subclass of `CheckConfigBase`) and a `Check`
subclass, plus one line in `checks/__init__.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp

from monitor.checks.failures import classify_exception
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import Observation
from monitor.metrics.exporter import Metrics

__all__ = ["Check", "CheckContext", "classify_exception"]

C = TypeVar("C", bound=CheckConfigBase)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What every check is handed.

    `shared` holds objects that checks of one kind share across instances (for example
    one rate-limit budget per GitHub token); keys start with the kind's name.
    """

    session: aiohttp.ClientSession
    clock: Clock
    metrics: Metrics | None = None
    shared: dict[str, Any] = field(default_factory=dict)


class Check(ABC, Generic[C]):
    """One configured check. Built once per config; `run()` is called every interval.

    Precompute in `__init__` whatever `run()` needs, so the hot path does no config
    lookups. `run()` returns an `Observation` for every expected failure; an exception
    escaping it is recorded as `unexpected` by the scheduler.
    """

    Config: ClassVar[type[CheckConfigBase]]
    # True when `run()` itself ends within the configured timeout, in every await it
    # makes (one `asyncio.timeout` around all of it): the scheduler then adds no guard.
    bounds_itself: ClassVar[bool] = False

    def __init__(self, config: C, ctx: CheckContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def target(self) -> str:
        """The host this check loads, for per-host concurrency and rate limits."""
        return self.config.kind

    def close(self) -> None:
        """Releases what the check holds (a client, its pool). Called once it stops."""

    @abstractmethod
    async def run(self) -> Observation:
        """Probes once. Must not exceed the configured timeout by much: the scheduler
        cancels it a little after."""
