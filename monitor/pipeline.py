"""Where raw results go: metrics, the alert state machine, severity rules and incidents.

Per result: annotate with the upstream status, record metrics, step the alert state
(persisted when it changes), then, while the check fails or has an incident open,
classify it and hand it to the incident manager with the reason paging is held back,
if any (maintenance, a silence, a parent check that is down).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from monitor.clock import Clock
from monitor.configtypes import CheckConfigBase
from monitor.incidents import CheckEvent, IncidentManager
from monitor.lastgood import LastGood, advice, capture
from monitor.maintenance import MaintenanceWindow, suppression
from monitor.metrics import Metrics
from monitor.model import CheckResult, FailureKind
from monitor.rules import SeverityRule, Situation, classify
from monitor.silences import SilenceBook
from monitor.state import AlertState, CheckState, step
from monitor.status import RunHistory
from monitor.store import Store

__all__ = ["ResultHandler", "annotate"]

log = structlog.stdlib.get_logger(__name__)

_FAILING = (AlertState.DOWN, AlertState.DEGRADED)
_LAST_GOOD = "lastgood:"  # store key prefix


class ResultHandler:
    """Consumes every `CheckResult`.

    Logs at info/warning only when the alert state changes (down once, recovered once);
    each run is a debug line. Without a store and an incident manager it only keeps
    state and metrics (as `monitor check` needs).
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        incidents: IncidentManager | None = None,
        silences: SilenceBook | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.store = store
        self.incidents = incidents
        self.silences = silences
        self.rules: Sequence[SeverityRule] = ()
        self.maintenance: Sequence[MaintenanceWindow] = ()
        self.states: dict[str, CheckState] = {}
        self.last: dict[str, CheckResult] = {}
        # Last known good per check. It is stored when its facts change, and otherwise
        # (only its time moved) at the first failure after it, so a restart loses nothing
        # that a page would need.
        self.last_good: dict[str, LastGood] = {}
        self.history: dict[str, RunHistory] = {}  # recent runs, for the status page
        self._unsaved: set[str] = set()
        # Bound once, after logging is configured: the per-run debug line is then skipped
        # without building its fields when debug is off.
        self._log = log.bind()
        is_enabled_for = getattr(self._log, "is_enabled_for", None)
        self._debug = is_enabled_for is None or bool(is_enabled_for(logging.DEBUG))

    def configure(
        self, rules: Sequence[SeverityRule], maintenance: Sequence[MaintenanceWindow]
    ) -> None:
        self.rules, self.maintenance = rules, maintenance

    async def load(self, checks: Iterable[CheckConfigBase]) -> None:
        """Takes back the alert state of every check from the store after a (re)start."""
        if self.store is None:
            return
        self.states = await self.store.load_check_states()
        saved = await self.store.kv_prefix(_LAST_GOOD)
        for config in checks:
            if (state := self.states.get(config.name)) is not None:
                self.metrics.set_state(config.name, config.kind, state.state)
            if (doc := saved.get(_LAST_GOOD + config.name)) is not None:
                try:
                    self.last_good[config.name] = LastGood.from_json(json.loads(doc))
                except (ValueError, KeyError, TypeError):
                    log.warning("last_good_unreadable", check=config.name)

    async def forget(self, names: Iterable[str]) -> None:
        names = list(names)
        for name in names:
            self.states.pop(name, None)
            self.last.pop(name, None)
            self.last_good.pop(name, None)
            self.history.pop(name, None)
            self._unsaved.discard(name)
        if self.store is not None and names:
            await self.store.delete_check_states(names)
            await self.store.kv_delete([_LAST_GOOD + n for n in names])

    async def __call__(self, config: CheckConfigBase, result: CheckResult) -> None:
        if result.failure is FailureKind.MONITOR_RESOURCES:
            # The monitor could not look: nothing is known about the asset, so its state,
            # history and incidents stay as they are.
            self.metrics.blinded.labels(result.check).inc()
            log.warning("probe_blinded", check=result.check, message=result.message)
            return
        if config.upstream_status is not None and not result.ok:
            result = annotate(result, self.last.get(config.upstream_status))
        self.last[result.check] = result
        history = self.history.get(result.check)
        if history is None:
            history = self.history[result.check] = RunHistory()
        history.add(result)
        self.metrics.record(result)
        prev = self.states.get(result.check) or CheckState()
        new = step(prev, result, config.failure_threshold or 1, config.success_threshold or 1)
        self.states[result.check] = new
        if self._debug:
            self._log.debug(
                "check_ran",
                outcome=result.outcome.value,
                failure=result.failure,
                duration_s=round(result.duration_s, 4),
                attempts=result.attempts,
            )
        if new.state is not prev.state:
            self._transition(result, prev, new)
            if self.store is not None:
                await self.store.save_check_state(result.check, new)
        if result.ok:
            await self._remember(result)
        elif result.check in self._unsaved:
            await self._save_last_good(result.check)
        if self.incidents is not None and (new.state in _FAILING or new.state is not prev.state):
            await self._incident(config, result, prev.state, new)

    async def _remember(self, result: CheckResult) -> None:
        values = capture(result.kind, result.details)
        prev = self.last_good.get(result.check)
        self.last_good[result.check] = LastGood(result.started_at, values)
        if prev is None or prev.values != values:
            await self._save_last_good(result.check)
        else:
            self._unsaved.add(result.check)

    async def _save_last_good(self, check: str) -> None:
        self._unsaved.discard(check)
        if self.store is not None:
            doc = json.dumps(self.last_good[check].to_json(), default=str)
            await self.store.kv_set(_LAST_GOOD + check, doc)

    def _transition(self, result: CheckResult, prev: CheckState, new: CheckState) -> None:
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

    async def _incident(
        self, config: CheckConfigBase, result: CheckResult, previous: AlertState, new: CheckState
    ) -> None:
        assert self.incidents is not None  # noqa: S101  the caller checked
        key = config.dedup_key or config.name
        failing = new.state in _FAILING
        if not failing and (previous is new.state or self.incidents.open_for(key) is None):
            return  # healthy with nothing to resolve: the common case costs nothing
        now = self.clock.now() if self.clock is not None else result.started_at
        failing_for = now - new.since if failing and new.since else timedelta(0)
        verdict = classify(
            self.rules,
            Situation(
                check=config.name, kind=config.kind, tags=frozenset(config.tags),
                failure=result.failure.value if result.failure else None,
                state=new.state, failing_for=failing_for, now=now,
            ),
        )  # fmt: skip
        title = f"{config.name} is {new.state.value}" + (
            f": {config.description}" if config.description else ""
        )
        await self.incidents.on_check(
            CheckEvent(
                check=config.name, key=key, title=title, result=result, state=new.state,
                previous=previous, severity=verdict.severity, rule=verdict.rule,
                auto_resolve=verdict.auto_resolve, suppressed=self._held_back(config, now) if failing else None,
                last_good=None if result.ok else advice(config.kind, self.last_good.get(config.name), result.details),
            )
        )  # fmt: skip

    def _held_back(self, config: CheckConfigBase, now: datetime) -> str | None:
        """Why paging for this check is held back now, if it is."""
        silences = self.silences.active(now) if self.silences is not None else []
        reason = suppression(
            self.maintenance, silences, config.name, config.kind, frozenset(config.tags), now
        )
        if reason is not None:
            return reason
        for parent in config.depends_on:
            state = self.states.get(parent)
            if state is not None and state.state is AlertState.DOWN:
                return f"parent {parent!r} is down"
        return None


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
