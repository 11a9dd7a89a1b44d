"""Alert-state values: what the monitor believes about a check, and the streaks behind it.

They are stepped by `monitor.engine.state.step` and read by the store, incidents, metrics
and the status page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["AlertState", "CheckState"]


class AlertState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    BLIND = "blind"  # the monitor cannot observe the check's asset right now


@dataclass(frozen=True, slots=True)
class CheckState:
    """What we believe about one check, and the streaks that got us here."""

    state: AlertState = AlertState.UNKNOWN
    since: datetime | None = None
    ups: int = 0  # consecutive UP results
    non_downs: int = 0  # consecutive results that were not DOWN
    bads: int = 0  # consecutive results that were not UP
    downs: int = 0  # consecutive DOWN results
    blinds: int = 0  # consecutive runs that could not observe
    seen: AlertState | None = None  # while BLIND: what was believed before
    seen_since: datetime | None = None
    cause: str | None = None  # while BLIND: why (the monitor-health incident's key)
