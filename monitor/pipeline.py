"""Where raw results go: metrics, the alert state machine, and one log line per change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog

from monitor.configtypes import CheckConfigBase
from monitor.metrics import Metrics
from monitor.model import CheckResult
from monitor.state import AlertState, CheckState, step

__all__ = ["ResultHandler", "annotate"]

log = structlog.stdlib.get_logger(__name__)


class ResultHandler:
    """Consumes every `CheckResult`: records it, steps the alert state, logs transitions.

    Logs at info/warning only when the alert state changes (down once, recovered once);
    each run is a debug line.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.states: dict[str, CheckState] = {}
        self.last: dict[str, CheckResult] = {}

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self.states.pop(name, None)
            self.last.pop(name, None)

    async def __call__(self, config: CheckConfigBase, result: CheckResult) -> None:
        if config.upstream_status is not None and not result.ok:
            result = annotate(result, self.last.get(config.upstream_status))
        self.last[result.check] = result
        self.metrics.record(result)
        prev = self.states.get(result.check) or CheckState()
        new = step(prev, result, config.failure_threshold or 1, config.success_threshold or 1)
        self.states[result.check] = new
        log.debug(
            "check_ran",
            outcome=result.outcome.value,
            failure=result.failure,
            duration_s=round(result.duration_s, 4),
            attempts=result.attempts,
        )
        if new.state is prev.state:
            return
        self.metrics.set_state(result.check, result.kind, new.state)
        fields = {"check": result.check, "kind": result.kind, "message": result.message}
        if new.state is AlertState.DOWN:
            log.warning("check_down", failure=result.failure, previous=prev.state.value, **fields)
        elif new.state is AlertState.DEGRADED:
            log.warning(
                "check_degraded", failure=result.failure, previous=prev.state.value, **fields
            )
        elif prev.state is AlertState.UNKNOWN:
            log.info("check_up", **fields)
        else:
            down_for = (result.started_at - prev.since).total_seconds() if prev.since else None
            log.info("check_recovered", previous=prev.state.value, down_for_s=down_for, **fields)


def annotate(result: CheckResult, upstream: CheckResult | None) -> CheckResult:
    """Adds the upstream's trouble to a failure: "… (while GitHub: Actions is degraded)".

    Only annotates; suppressing pages on it is the incident engine's decision.
    """
    if upstream is None or upstream.ok:
        return result
    note = {"check": upstream.check, "outcome": upstream.outcome.value, "message": upstream.message}
    return replace(
        result,
        message=f"{result.message} (while {upstream.check}: {upstream.message})",
        details={**result.details, "upstream": note},
    )
