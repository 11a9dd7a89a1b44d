"""Alert state per check: consecutive-result thresholds over raw results. Pure.

Raw results say what one run saw; the alert state says what we believe, after
`failure_threshold` bad runs in a row (DOWN, or DEGRADED for soft failures) and
`success_threshold` good runs in a row to leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from monitor.model import CheckResult, Outcome

__all__ = ["AlertState", "CheckState", "step"]


class AlertState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class CheckState:
    """What we believe about one check, and the streaks that got us here."""

    state: AlertState = AlertState.UNKNOWN
    since: datetime | None = None
    ups: int = 0  # consecutive UP results
    non_downs: int = 0  # consecutive results that were not DOWN
    bads: int = 0  # consecutive results that were not UP
    downs: int = 0  # consecutive DOWN results


def step(
    prev: CheckState, result: CheckResult, failure_threshold: int, success_threshold: int
) -> CheckState:
    """The state after `result`. `since` changes only when the state does."""
    up, down = result.outcome is Outcome.UP, result.outcome is Outcome.DOWN
    counts = CheckState(
        prev.state,
        prev.since,
        ups=prev.ups + 1 if up else 0,
        non_downs=0 if down else prev.non_downs + 1,
        bads=0 if up else prev.bads + 1,
        downs=prev.downs + 1 if down else 0,
    )
    target = _target(prev.state, counts, failure_threshold, success_threshold)
    if target is prev.state:
        return counts
    return replace(counts, state=target, since=result.started_at)


def _target(current: AlertState, c: CheckState, fail_n: int, ok_n: int) -> AlertState:
    if c.downs >= fail_n:
        return AlertState.DOWN
    if current is AlertState.DOWN:
        # Leaving DOWN takes ok_n runs that were not DOWN; slow ones land in DEGRADED.
        if c.non_downs < ok_n:
            return current
        return AlertState.UP if c.ups >= ok_n else AlertState.DEGRADED
    if c.bads >= fail_n:
        return AlertState.DEGRADED
    if current is AlertState.DEGRADED:
        return AlertState.UP if c.ups >= ok_n else current
    if current is AlertState.UNKNOWN and c.ups:
        return AlertState.UP  # nothing to recover from: the first success is enough
    return current
