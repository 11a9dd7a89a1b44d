"""The monitor's own blindness: which runs could not observe, and one monitor-health
incident per cause (the failure and the upstream host), opened while any check is blind
for it and resolved when none is any more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from yarl import URL

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult, FailureKind
from monitor.engine.lastgood import kind_of
from monitor.engine.state import blindness
from monitor.incidents.manager import IncidentManager

__all__ = ["MonitorHealth", "blind_cause", "upstream_host"]


def blind_cause(config: CheckConfigBase, result: CheckResult) -> str | None:
    """The monitor-health key when `result` could not observe, else None."""
    if result.ok or not blindness(config.kind, result.failure):
        return None
    assert result.failure is not None  # noqa: S101  blindness says so
    if result.failure is FailureKind.MONITOR_RESOURCES:
        return f"monitor-health:{result.failure.value}"
    return f"monitor-health:{result.failure.value}:{upstream_host(config)}"


class MonitorHealth:
    """Keeps the monitor-health incidents in step with the checks that are blind.

    `states` returns the alert state of every check (the pipeline's); without an incident
    manager it does nothing.
    """

    def __init__(
        self,
        incidents: IncidentManager | None,
        states: Callable[[], Mapping[str, CheckState]],
    ) -> None:
        self.incidents = incidents
        self._states = states
        self._causes: dict[str, str] = {}  # monitor-health key → what the monitor cannot do

    async def changed(
        self, config: CheckConfigBase, result: CheckResult, prev: str | None, new: str | None
    ) -> None:
        """A check's blindness cause went from `prev` to `new` with `result`."""
        if self.incidents is None:
            return
        if new is not None:
            self._causes[new] = _describe_cause(config, result)
        for key in {prev, new} - {None}:
            await self._health(str(key))

    async def forgotten(self, causes: Iterable[str]) -> None:
        """Checks blind for `causes` were removed: they no longer keep the monitor blind."""
        if self.incidents is None:
            return
        for cause in sorted(causes):
            await self._health(cause)

    async def _health(self, key: str) -> None:
        """Opens, updates or resolves the monitor-health incident for `key`."""
        assert self.incidents is not None  # noqa: S101  the caller checked
        blind = sorted(
            name
            for name, s in self._states().items()
            if s.state is AlertState.BLIND and s.cause == key
        )
        if not blind:
            self._causes.pop(key, None)
            await self.incidents.monitor_health(key, "", "", [])
            return
        current = self.incidents.open_for(key)
        what = self._causes.get(key) or (current.message.split(";")[0] if current else key)
        n = f"{len(blind)} check{'s' if len(blind) != 1 else ''} blind"
        await self.incidents.monitor_health(
            key, f"{what}; {n}", f"{what}; {n}: {', '.join(blind)}", blind
        )


def upstream_host(config: CheckConfigBase) -> str:
    """The upstream a check talks to, for monitor-health keys and messages."""
    for attr in ("api_url", "url", "registry", "gallery_url", "api"):
        value = getattr(config, attr, None)
        if isinstance(value, str) and value:
            try:
                host = URL(value).host
            except (ValueError, TypeError):
                host = None
            if host:
                return host
    return config.kind


_CANNOT = {
    FailureKind.RATE_LIMITED: "rate limit reached",
    FailureKind.AUTH: "refuses the monitor's credentials",
    FailureKind.UNAVAILABLE: "unavailable",
}


def _describe_cause(config: CheckConfigBase, result: CheckResult) -> str:
    """What the monitor cannot do, stably worded: "GitHub API (api.github.com): rate limit
    reached until 05:44 UTC"."""
    if result.failure is FailureKind.MONITOR_RESOURCES:
        return "the monitor ran out of its own resources"
    host = upstream_host(config)
    label = kind_of(config.kind).upstream_label
    text = (f"{label} ({host})" if label and host != config.kind else host) + ": "
    text += _CANNOT.get(result.failure or FailureKind.UNEXPECTED, "blind")
    until = result.details.get("rate_limit_reset")
    retry = result.details.get("retry_after_s")
    try:
        if not isinstance(until, datetime) and isinstance(retry, int | float):
            until = result.started_at + timedelta(seconds=float(retry))
        if isinstance(until, datetime):
            text += f" until {until.astimezone(UTC):%H:%M} UTC"
    except (OverflowError, ValueError):  # an absurd wait: say no time rather than fail
        pass
    return text
