"""The SLO series: target, remaining error budget and burn rates per objective.

One label set per objective (`slo`, the check or group name, and `scope`, `check` or
`group`), plus `window` on the burn rates: bounded by config. A figure that has no runs
to stand on (no data in the window) is not exported at all, rather than as NaN: an
alert expression then sees nothing, and a dashboard shows a gap instead of a zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

__all__ = ["SloMetrics"]


class SloMetrics:
    """`monitor_slo_target`, `monitor_slo_error_budget_remaining`, `monitor_slo_burn_rate`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.target = Gauge(
            "monitor_slo_target", "The objective: share of runs that must find the asset up "
            "(blind runs excluded), as a ratio.", ["slo", "scope"], registry=registry,
        )  # fmt: skip
        self.remaining = Gauge(
            "monitor_slo_error_budget_remaining", "Share of the error budget left over the "
            "SLO window: 1 untouched, 0 spent, below 0 overspent.", ["slo", "scope"],
            registry=registry,
        )  # fmt: skip
        self.burn = Gauge(
            "monitor_slo_burn_rate", "Error ratio over the window divided by the error "
            "budget: 1 spends the budget exactly over the SLO window.",
            ["slo", "scope", "window"], registry=registry,
        )  # fmt: skip
        self._windows: dict[tuple[str, str], tuple[str, ...]] = {}

    def set(
        self,
        name: str,
        scope: str,
        target: float,
        remaining: float | None,
        burn: Mapping[str, float | None],
    ) -> None:
        """Exports one objective's figures; a None figure removes its series."""
        self.target.labels(name, scope).set(target)
        _put(self.remaining, (name, scope), remaining)
        for window, rate in burn.items():
            _put(self.burn, (name, scope, window), rate)
        self._windows[name, scope] = tuple(burn)

    def remove(self, name: str, scope: str) -> None:
        """Drops an objective no longer configured."""
        for labels in [(name, scope)]:
            _drop(self.target, labels)
            _drop(self.remaining, labels)
        for window in self._windows.pop((name, scope), ()):
            _drop(self.burn, (name, scope, window))


def _put(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is None:
        _drop(gauge, labels)
    else:
        gauge.labels(*labels).set(value)


def _drop(gauge: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never created
        gauge.remove(*labels)
