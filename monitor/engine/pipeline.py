"""Where raw results go: metrics, the alert state machine, severity rules and incidents.

Per result: annotate with the upstream status, record metrics, step the alert state
(persisted when it changes), then, while the check fails or has an incident open,
classify it and hand it to the incident manager with the reason paging is held back,
if any (maintenance, a silence, a parent check that is down).

A result that could not observe (`state.blindness`) makes the check BLIND, which opens
nothing for the asset unless a rule names `blind`; the monitor's own trouble goes to one
monitor-health incident per cause (the failure and the upstream host), resolved when no
check is blind for it any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Suppression, SuppressionKind
from monitor.engine.confirm import Confirmation, Verdict, alone, asks, held
from monitor.engine.health import MonitorHealth, blind_cause, upstream_host
from monitor.engine.history import HistoryBook, Rollups, RunHistory
from monitor.engine.lastgood import LastGood, LastGoodKeeper, kind_of
from monitor.engine.state import step
from monitor.incidents.maintenance import MaintenanceWindow, suppression
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.incidents.rules import SeverityRule, Situation, classify
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.store import Store

__all__ = ["ResultHandler", "annotate"]

log = structlog.stdlib.get_logger(__name__)

_FAILING = (AlertState.DOWN, AlertState.DEGRADED)
_CLASSIFIED = (*_FAILING, AlertState.BLIND)  # states the severity rules are asked about


class ResultHandler:
    """Consumes every `CheckResult`.

    Logs at info/warning only when the alert state changes (down once, recovered once);
    each run is a debug line. Without a store and an incident manager it only keeps
    state and metrics (as `monitor check` needs). The recent runs are `HistoryBook`'s
    and the last known good `LastGoodKeeper`'s; readers ask through `CheckReadings`.
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
        # Asks other replicas before a check with `confirm:` goes down (a fleet's only).
        self.confirmer: Callable[[CheckConfigBase, CheckResult], Awaitable[Confirmation]] | None
        self.confirmer = None
        # Whether a check's results stay local (a fleet's replica whose lease ran out
        # probes its checks on its own: nothing written, nothing paged, see `disown`).
        self.orphaned: Callable[[str], bool] | None = None
        self.rules: Sequence[SeverityRule] = ()
        self.maintenance: Sequence[MaintenanceWindow] = ()
        self.states: dict[str, CheckState] = {}
        self.last: dict[str, CheckResult] = {}
        self.good = LastGoodKeeper(store)  # last known good per check
        self.runs = HistoryBook()  # recent runs, for the status page
        self.rollups = Rollups()  # this minute's runs, until `HistoryWriter` stores them
        self.health = MonitorHealth(incidents, lambda: self.states)
        # Checks whose last transition the store did not take (it was away): the state it
        # last took, from which the next result writes the transition again.
        self.unsettled: dict[str, CheckState] = {}
        # Bound once, after logging is configured: the per-run debug line is then skipped
        # without building its fields when debug is off.
        self._log = log.bind()
        is_enabled_for = getattr(self._log, "is_enabled_for", None)
        self._debug = is_enabled_for is None or bool(is_enabled_for(logging.DEBUG))

    # --- CheckReadings: what the status page reads -------------------------------------

    def state(self, check: str) -> CheckState | None:
        return self.states.get(check)

    def last_result(self, check: str) -> CheckResult | None:
        return self.last.get(check)

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        return self.runs.runs(check)

    def run_history(self, check: str) -> RunHistory | None:
        """The recent runs themselves: what a replica writes for the others."""
        return self.runs.by_check.get(check)

    @property
    def last_good(self) -> dict[str, LastGood]:
        """Last known good per check (`LastGoodKeeper`'s)."""
        return self.good.by_check

    @property
    def history(self) -> dict[str, RunHistory]:
        """Recent runs per check (`HistoryBook`'s)."""
        return self.runs.by_check

    def configure(
        self, rules: Sequence[SeverityRule], maintenance: Sequence[MaintenanceWindow]
    ) -> None:
        self.rules, self.maintenance = rules, maintenance

    async def load(self, checks: Iterable[CheckConfigBase]) -> None:
        """Takes back the alert state of every check from the store after a (re)start."""
        if self.store is None:
            return
        self.states = await self.store.load_check_states()
        checks = list(checks)
        for config in checks:
            if (state := self.states.get(config.name)) is not None:
                self.metrics.set_state(config.name, config.kind, state.state)
        await self.good.load(checks)

    async def adopt(self, checks: Iterable[CheckConfigBase]) -> None:
        """Takes the alert state of `checks` (streaks, state, what a blind check believed)
        and their open incidents from the store: another replica ran them until now."""
        if self.store is None:
            return
        checks = list(checks)
        stored = await self.store.load_check_states()
        if self.incidents is not None:
            await self.incidents.adopt([c.dedup_key or c.name for c in checks])
        for config in checks:
            state = stored.get(config.name)
            if state is None:
                self.states.pop(config.name, None)
            else:
                self.states[config.name] = state
                self.metrics.set_state(config.name, config.kind, state.state)
            self.unsettled.pop(config.name, None)
        await self.good.load(checks)

    async def disown(self, checks: Iterable[CheckConfigBase]) -> None:
        """Drops what this replica saw of `checks` on its own (another replica ran them
        meanwhile): their held transitions and unwritten history, then their state is
        read back from the store, as `adopt` does."""
        checks = list(checks)
        names = [c.name for c in checks]
        for name in names:
            self.unsettled.pop(name, None)
        self.rollups.forget(names)
        await self.adopt(checks)

    async def forget(self, names: Iterable[str]) -> None:
        names = list(names)
        causes = {s.cause for n in names if (s := self.states.get(n)) and s.cause}
        for name in names:
            self.states.pop(name, None)
            self.last.pop(name, None)
            self.unsettled.pop(name, None)
        self.runs.forget(names)
        self.rollups.forget(names)
        if self.store is not None and names:
            await self.store.delete_check_states(names)
        await self.good.forget(names)
        await self.health.forgotten(causes)

    async def __call__(self, config: CheckConfigBase, result: CheckResult) -> None:
        if result.failure is FailureKind.MONITOR_RESOURCES:
            # The monitor could not look: the check goes blind (below), never down.
            self.metrics.blinded.labels(result.check).inc()
            log.warning("probe_blinded", check=result.check, message=result.message)
        if config.upstream_status is not None and not result.ok:
            result = annotate(result, self.last.get(config.upstream_status))
        cause = blind_cause(config, result)
        if cause is None and result.failure is FailureKind.UNAVAILABLE:
            # The users' own path is down too (a registry, a gallery): the asset's failure,
            # marked as upstream for the rules and the page.
            result = replace(
                result, details={**result.details, "upstream_unavailable": upstream_host(config)}
            )
        self.last[result.check] = result
        self.runs.add(result, blind=cause is not None)
        self.rollups.add(result, blind=cause is not None)
        self.metrics.record(result, kind_of(config.kind).asset_facts(result.details))
        prev = self.states.get(result.check) or CheckState()
        fail_n, ok_n = config.failure_threshold or 1, config.success_threshold or 1
        new = step(prev, result, fail_n, ok_n, cause)
        local = self.orphaned is not None and self.orphaned(result.check)
        if asks(config, prev, new):
            result, new = await self._confirmed(config, result, prev, new, local=local)
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
        # After a write the store did not take, everything is written again from the state
        # it last took, so a check that recovered meanwhile still resolves its incident.
        settled = self.unsettled.get(result.check)
        before = prev if settled is None else settled
        if local:
            # Held: the next run under a lease writes everything from the state the store
            # last took (or `disown` drops it when another replica ran the check).
            if settled is not None or new != prev:
                self.unsettled.setdefault(result.check, before)
            return
        try:
            if self.store is not None and (
                settled is not None or _kept(prev, fail_n, ok_n) != _kept(new, fail_n, ok_n)
            ):
                # The streak is saved with the state (and a blind check's cause), so a
                # restart does not start it again; a steady state (counts past their
                # thresholds) writes nothing. The last good state is saved alongside.
                await _both(self.store.save_check_state(result.check, new),
                            self.good.observe(result))  # fmt: skip
            else:
                await self.good.observe(result)
            if self.incidents is not None and (
                new.state in _CLASSIFIED or new.state is not before.state
            ):
                await self._incident(config, result, before.state, new)
            if before.cause != new.cause:
                await self.health.changed(config, result, before.cause, new.cause)
        except StoreError:
            self.unsettled.setdefault(result.check, before)
            raise
        if settled is not None:
            del self.unsettled[result.check]
            log.info("check_state_settled", check=result.check, state=new.state.value)

    async def _confirmed(
        self,
        config: CheckConfigBase,
        result: CheckResult,
        prev: CheckState,
        new: CheckState,
        *,
        local: bool = False,
    ) -> tuple[CheckResult, CheckState]:
        """Asks other replicas before the check goes down (`monitor.engine.confirm`). Only
        this check waits for the answer: each check's results come from its own task."""
        if self.confirmer is None:
            confirmation = alone(result, "no other replica: the store is not shared")
        elif local:
            confirmation = alone(result, "the store is away: no other replica can be asked")
        else:
            try:
                confirmation = await self.confirmer(config, result)
            except Exception as exc:  # a bug there must not lose the failure
                log.exception("confirmation_failed", check=result.check)
                confirmation = alone(result, f"the confirmation failed: {type(exc).__name__}")
        self.metrics.track_confirmations().labels(confirmation.verdict.value).inc()
        result = replace(result, details={**result.details, "confirmation": confirmation.detail()})
        self.last[result.check] = result
        if confirmation.verdict is Verdict.REFUTED:
            log.warning("check_down_refuted", check=result.check, message=result.message,
                        reason=confirmation.reason, state=prev.state.value)  # fmt: skip
            return result, held(prev, new)
        log.info("check_down_" + confirmation.verdict.value, check=result.check,
                 reason=confirmation.reason)  # fmt: skip
        return result, new

    def _transition(self, result: CheckResult, prev: CheckState, new: CheckState) -> None:
        self.metrics.set_state(result.check, result.kind, new.state)
        fields = {"check": result.check, "kind": result.kind, "message": result.message}
        if new.state is AlertState.BLIND:
            log.warning("check_blind", failure=result.failure, previous=prev.state.value,
                        cause=new.cause, **fields)  # fmt: skip
        elif prev.state is AlertState.BLIND:
            log.info("check_sees_again", state=new.state.value, **fields)
        elif new.state is AlertState.DOWN:
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
        failing = new.state in _CLASSIFIED
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
                last_good=self.good.advice(config, result),
            )
        )  # fmt: skip

    def _held_back(self, config: CheckConfigBase, now: datetime) -> Suppression | None:
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
                return Suppression(SuppressionKind.PARENT, f"parent {parent!r} is down")
        return None


def annotate(result: CheckResult, upstream: CheckResult | None) -> CheckResult:
    """Adds the upstream's trouble to a failure: "… (while GitHub: Actions is degraded)".

    Only when the upstream reports a non-operational state; when the status check itself
    failed (unreachable, a component not on the page), that is a detail, not the story.
    Only annotates; suppressing pages on it is the incident engine's decision.
    """
    if upstream is None or upstream.ok:
        return result
    note = {"check": upstream.check, "outcome": upstream.outcome.value, "message": upstream.message}
    if upstream.failure is not FailureKind.UPSTREAM_DEGRADED:
        return replace(result, details={**result.details, "upstream_check_failed": note})
    return replace(
        result,
        message=f"{result.message} (while {upstream.check}: {upstream.message})",
        details={**result.details, "upstream": note},
    )


def _kept(state: CheckState, fail_n: int, ok_n: int) -> CheckState:
    """What the store keeps of `state`: counts beyond their threshold change nothing."""
    return replace(
        state,
        ups=min(state.ups, ok_n),
        non_downs=min(state.non_downs, ok_n),
        bads=min(state.bads, fail_n),
        downs=min(state.downs, fail_n),
        blinds=min(state.blinds, fail_n),
    )


async def _both(first: Awaitable[None], second: Awaitable[None]) -> None:
    """Both at once (two writes on two connections: one round trip of waiting); the
    first failure raises once both have ended."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
