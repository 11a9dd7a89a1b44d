"""Alert state per check: consecutive-result thresholds over raw results. Pure.

Raw results say what one run saw; the alert state says what we believe, after
`failure_threshold` bad runs in a row (DOWN, or DEGRADED for soft failures) and
`success_threshold` good runs in a row to leave it.

A run that could not observe the asset (`blindness`: the monitor rate limited, refused or
out of its own resources, or the API that is its only window on the asset unavailable)
says nothing about the asset. It touches none of the streaks; `failure_threshold` of them
in a row make the check BLIND, which remembers what was believed before (`seen`,
`seen_since`). The first run that sees again steps on from that belief with the streaks
as they were, so a degraded check that goes blind comes back degraded, never down.
"""

from __future__ import annotations

from dataclasses import replace

from monitor.checks import CHECKS
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import CheckResult, FailureKind, Outcome

__all__ = ["AlertState", "CheckState", "blindness", "step"]


# Failures that say the monitor could not look, whatever the check's kind.
_BLIND_EVERYWHERE = frozenset(
    {FailureKind.RATE_LIMITED, FailureKind.AUTH, FailureKind.MONITOR_RESOURCES}
)


def blindness(kind: str, failure: FailureKind | str | None) -> bool:
    """Whether a failure of a check of `kind` means the monitor could not observe."""
    if failure is None:
        return False
    try:
        failure = FailureKind(failure)
    except ValueError:
        return False
    if failure in _BLIND_EVERYWHERE:
        return True
    # Kinds whose API is only the monitor's window on the asset declare it
    # (`Check.unavailable_is_blindness`); elsewhere (npm, the marketplace) the API is the
    # users' own path: their outage.
    if failure is not FailureKind.UNAVAILABLE:
        return False
    cls = CHECKS.get(kind)
    return cls is not None and cls.unavailable_is_blindness


def step(
    prev: CheckState,
    result: CheckResult,
    failure_threshold: int,
    success_threshold: int,
    cause: str | None = None,
) -> CheckState:
    """The state after `result`. `since` changes only when the state does.

    `cause` given: the run could not observe (see `blindness`), for that reason.
    """
    if cause is not None:
        blinds = prev.blinds + 1
        if prev.state is AlertState.BLIND:
            return replace(prev, blinds=blinds, cause=cause)
        if blinds < failure_threshold:
            return replace(prev, blinds=blinds)
        return replace(
            prev, state=AlertState.BLIND, since=result.started_at, blinds=blinds,
            seen=prev.state, seen_since=prev.since, cause=cause,
        )  # fmt: skip
    if prev.state is AlertState.BLIND:
        # Sight is back: step on from what was believed before, streaks untouched.
        prev = CheckState(
            prev.seen or AlertState.UNKNOWN, prev.seen_since,
            prev.ups, prev.non_downs, prev.bads, prev.downs,
        )  # fmt: skip
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
