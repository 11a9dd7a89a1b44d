"""The check seam: what a kind implements and what it is given. How errors map to
failure kinds is `checks.failures` (`classify_exception` is re-exported here).

A kind is one module with a config model (subclass of `CheckConfigBase`) and a `Check`
subclass, plus one line in `checks/__init__.py`. What only the kind knows is declared on
its class: whether its API is only the monitor's window on the asset
(`unavailable_is_blindness`), what of a passing run is worth remembering and what
reverting to it means (`capture`, `advice`), and the asset facts it exports
(`asset_facts`). Kinds that declare nothing get the defaults here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp

from monitor.checks.failures import classify_exception
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import Observation
from monitor.metrics.exporter import AssetFacts, Metrics

__all__ = [
    "AssetFacts",
    "Check",
    "CheckContext",
    "LastGood",
    "classify_exception",
    "pick",
    "shared_asset_facts",
    "when",
]

C = TypeVar("C", bound=CheckConfigBase)


@dataclass(frozen=True, slots=True)
class LastGood:
    """When a check last passed (`at`) and the facts its kind captured from that run."""

    at: datetime
    values: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "values": dict(self.values)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LastGood:
        values = doc.get("values")
        return cls(
            at=datetime.fromisoformat(str(doc["at"])),
            values=dict(values) if isinstance(values, Mapping) else {},
        )


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
    # True when the kind's API is only the monitor's window on the asset: that API being
    # unavailable means the monitor is blind, not the asset down. False where the API is
    # the users' own path to the asset (a registry, a gallery): their outage.
    unavailable_is_blindness: ClassVar[bool] = False
    # What the monitor's own trouble with this kind's upstream is called in monitor-health
    # incidents ("GitHub API (api.github.com): rate limit reached"); None: the host alone.
    upstream_label: ClassVar[str | None] = None

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

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        """The facts of a passing run's details worth remembering as last known good
        (empty: only the time is kept). Pure."""
        return {}

    @classmethod
    def advice(cls, good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
        """What was last good and what reverting to it means, for a failing run's details:
        `{"at", "values", "text", "command", "url"}` (see `monitor.engine.lastgood`), or
        None when nothing is known. Pure. The default says when the check last passed."""
        if good is None:
            return None
        return {
            **good.to_json(),
            "command": None,
            "url": None,
            "text": cls.good_text(good, failing),
        }

    @classmethod
    def good_text(cls, good: LastGood, failing: Mapping[str, Any]) -> str:
        """The default advice's sentence; a kind with its own wording overrides this."""
        return f"last passed at {when(good.at)}"

    @classmethod
    def asset_facts(cls, details: Mapping[str, Any]) -> AssetFacts | None:
        """What a run's details say about the asset itself (its version, installs, when
        it was published), exported as `monitor_asset_*` series. None: nothing."""
        return None


def pick(details: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The given keys of `details` that are set (for `capture`)."""
    return {k: details[k] for k in keys if details.get(k) is not None}


def shared_asset_facts(details: Mapping[str, Any]) -> AssetFacts:
    """The asset facts of kinds that report them under `version`, `installs` and
    `updated_at` in their details."""
    version, installs, updated = (details.get(k) for k in ("version", "installs", "updated_at"))
    return AssetFacts(
        version=version if isinstance(version, str) else None,
        installs=installs
        if isinstance(installs, int | float) and not isinstance(installs, bool)
        else None,
        updated_at=updated if isinstance(updated, datetime) else None,
    )


def when(at: datetime) -> str:
    """A last-good time as advice texts say it: `2026-11-22 10:00 UTC`."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
