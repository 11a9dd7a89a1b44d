"""The incident lifecycle under a fake clock, against an in-memory store."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.core.alertstate import AlertState
from monitor.core.errors import IncidentConflict, IncidentNotFound
from monitor.core.model import (
    CheckResult,
    FailureKind,
    IncidentStatus,
    Outcome,
    Severity,
    Suppression,
    SuppressionKind,
)
from monitor.incidents.manager import CheckEvent, IncidentManager
from tests.fakes import FakeClock, MemoryStore

DOWN, UP, DEG = AlertState.DOWN, AlertState.UP, AlertState.DEGRADED


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def manager(store, clock, metrics) -> IncidentManager:
    m = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    await m.load()
    return m


def event(clock: FakeClock, state: AlertState, previous: AlertState = UP, *,
          severity: Severity | None = Severity.P1, message: str = "503 from docs",
          failure: FailureKind | None = FailureKind.HTTP_STATUS,
          suppressed: Suppression | None = None,
          auto_resolve: bool = True, rule: str = "sites-down") -> CheckEvent:  # fmt: skip
    outcome = Outcome.UP if state is UP else Outcome.DOWN
    result = CheckResult("docs", "http", outcome, None if state is UP else failure, message,
                         clock.now(), 0.1)  # fmt: skip
    return CheckEvent(check="docs", key="docs", title="docs is down", result=result, state=state,
                      previous=previous, severity=severity, rule=rule, auto_resolve=auto_resolve,
                      suppressed=suppressed)  # fmt: skip


def events_of(store: MemoryStore, incident_id: int) -> list[str]:
    return [e.event for e in store.entries if e.incident_id == incident_id]


class TestFromChecks:
    async def test_open_update_resolve(self, manager, store, clock, registry) -> None:
        opened = await manager.on_check(event(clock, DOWN))
        assert opened is not None
        assert (opened.status, opened.severity, opened.key) == (
            IncidentStatus.TRIGGERED,
            Severity.P1,
            "docs",
        )
        again = await manager.on_check(event(clock, DOWN, DOWN))  # same failure: nothing new
        assert again == opened
        await clock.advance(60)
        changed = await manager.on_check(
            event(clock, DOWN, DOWN, message="timed out", failure=FailureKind.TIMEOUT)
        )
        assert changed is not None
        assert changed.failure == "timeout"
        await clock.advance(60)
        resolved = await manager.on_check(event(clock, UP, DOWN, severity=None))
        assert resolved is not None
        assert resolved.status is IncidentStatus.RESOLVED
        assert resolved.id == opened.id
        assert events_of(store, opened.id) == ["opened", "failure", "recovered", "resolved"]
        assert len(store.incidents) == 1
        assert registry.get_sample_value("monitor_incidents_opened_total", {"severity": "P1"}) == 1
        assert (
            registry.get_sample_value("monitor_incidents_resolved_total", {"severity": "P1"}) == 1
        )
        assert (
            registry.get_sample_value(
                "monitor_incident_time_to_resolve_seconds_sum", {"severity": "P1"}
            )
            == 120
        )

    @pytest.mark.parametrize("severity", [None])
    async def test_ignored_failures_open_nothing(self, manager, store, clock, severity) -> None:
        assert await manager.on_check(event(clock, DOWN, severity=severity)) is None
        assert store.incidents == {}

    async def test_a_pass_on_the_way_back_up_is_not_a_failure(self, manager, store, clock) -> None:
        opened = await manager.on_check(event(clock, DOWN))
        assert opened is not None
        first_pass = replace(
            event(clock, DOWN, DOWN),
            result=CheckResult(
                "docs", "http", Outcome.UP, None, "200 OK in 3 ms", clock.now(), 0.1
            ),
        )
        assert await manager.on_check(first_pass) == opened
        assert events_of(store, opened.id) == ["opened"]

    async def test_severity_rises_never_falls(self, manager, store, clock) -> None:
        first = await manager.on_check(event(clock, DOWN, severity=Severity.P2))
        assert first is not None
        raised = await manager.on_check(
            event(clock, DOWN, DOWN, severity=Severity.P1, rule="p2-for-2h")
        )
        assert raised is not None
        assert raised.severity is Severity.P1
        lower = await manager.on_check(event(clock, DOWN, DOWN, severity=Severity.P2))
        assert lower is not None
        assert lower.severity is Severity.P1
        assert events_of(store, first.id) == ["opened", "severity_raised"]

    async def test_flapping_reopens_within_cooldown(self, manager, store, clock) -> None:
        first = await manager.on_check(event(clock, DOWN))
        await manager.on_check(event(clock, UP, DOWN, severity=None))
        await clock.advance(10 * 60)
        again = await manager.on_check(event(clock, DOWN))
        assert again is not None
        assert again.id == first.id
        assert (again.status, again.reopened) == (IncidentStatus.TRIGGERED, 1)
        await manager.on_check(event(clock, UP, DOWN, severity=None))
        await clock.advance(31 * 60)
        later = await manager.on_check(event(clock, DOWN))
        assert later is not None
        assert later.id != first.id  # past the cool-down: a new incident
        assert events_of(store, first.id) == [
            "opened",
            "recovered",
            "resolved",
            "reopened",
            "recovered",
            "resolved",
        ]

    async def test_waits_for_a_human_when_told_to(self, manager, store, clock) -> None:
        opened = await manager.on_check(event(clock, DOWN, auto_resolve=False))
        assert opened is not None
        still = await manager.on_check(event(clock, UP, DOWN, severity=None))
        assert still is not None
        assert still.status is IncidentStatus.TRIGGERED
        assert events_of(store, opened.id) == ["opened", "recovered", "waiting"]
        resolved = await manager.resolve(opened.id, "alice", "fixed the DNS record")
        assert resolved.status is IncidentStatus.RESOLVED

    async def test_suppression_is_on_the_timeline(self, manager, store, clock, registry) -> None:
        why = "parent 'homepage' is down"
        held = Suppression(SuppressionKind.PARENT, why)
        opened = await manager.on_check(event(clock, DOWN, suppressed=held))
        assert opened is not None
        assert opened.suppressed == why
        lifted = await manager.on_check(event(clock, DOWN, DOWN))
        assert lifted is not None
        assert lifted.suppressed is None
        texts = [e.text for e in store.entries if e.incident_id == opened.id]
        assert texts[1:] == [f"not paging: {why}", f"paging allowed again (was: {why})"]
        assert (
            registry.get_sample_value("monitor_pages_suppressed_total", {"reason": "parent"}) == 1
        )

    async def test_degraded_opens_when_a_rule_says_so(self, manager, clock) -> None:
        opened = await manager.on_check(
            event(clock, DEG, severity=Severity.P2, failure=FailureKind.SLOW)
        )
        assert opened is not None
        assert opened.severity is Severity.P2


class TestFromPeople:
    async def test_ack_assign_comment_resolve(self, manager, store, clock, registry) -> None:
        opened = await manager.on_check(event(clock, DOWN))
        assert opened is not None
        await clock.advance(300)
        acked = await manager.acknowledge(opened.id, "alice")
        assert (acked.status, acked.assignee) == (IncidentStatus.ACKNOWLEDGED, "alice")
        assert await manager.acknowledge(opened.id, "bob") == acked  # idempotent
        assigned = await manager.assign(opened.id, "bob", "alice")
        assert assigned.assignee == "bob"
        await manager.comment(opened.id, "reverting to 0.85.48", "bob")
        resolved = await manager.resolve(opened.id, "bob")
        assert resolved.status is IncidentStatus.RESOLVED
        with pytest.raises(IncidentConflict, match="already resolved"):
            await manager.acknowledge(opened.id, "carol")
        assert events_of(store, opened.id) == [
            "opened",
            "acknowledged",
            "assigned",
            "commented",
            "resolved",
        ]
        actors = [e.actor for e in store.entries if e.incident_id == opened.id]
        assert actors == ["monitor", "alice", "alice", "bob", "bob"]
        assert (
            registry.get_sample_value(
                "monitor_incident_time_to_acknowledge_seconds_sum", {"severity": "P1"}
            )
            == 300
        )

    async def test_unknown_incident(self, manager) -> None:
        with pytest.raises(IncidentNotFound):
            await manager.resolve(99, "alice")

    async def test_manual_report_is_untriaged_until_a_person_ranks_it(
        self, manager, store, registry
    ) -> None:
        url = "https://github.com/winglang/wing/issues/4171"
        report = await manager.report(
            "Canary fails on 0.30.0", "alice", url=url, text="from Discord"
        )
        assert (report.severity, report.source, report.status) == (
            None,
            "manual",
            IncidentStatus.TRIGGERED,
        )
        assert await manager.report("dup", "bob", url=url) == report  # same URL: same incident
        assert (
            registry.get_sample_value(
                "monitor_incidents_open", {"severity": "None", "status": "triggered"}
            )
            == 1
        )
        triaged = await manager.set_severity(report.id, Severity.P0, "alice")
        assert triaged.severity is Severity.P0
        assert events_of(store, report.id) == ["reported", "triaged"]
        assert (
            registry.get_sample_value(
                "monitor_incidents_open", {"severity": "P0", "status": "triggered"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "monitor_incidents_open", {"severity": "None", "status": "triggered"}
            )
            == 0
        )

    async def test_racing_ack_and_resolve_stay_consistent(self, manager, store, clock) -> None:
        opened = await manager.on_check(event(clock, DOWN))
        assert opened is not None
        results = await asyncio.gather(
            manager.acknowledge(opened.id, "alice"), manager.resolve(opened.id, "bob"),
            return_exceptions=True,
        )  # fmt: skip
        assert not [r for r in results if isinstance(r, BaseException)]
        final = store.incidents[opened.id]
        assert final.status is IncidentStatus.RESOLVED
        assert events_of(store, opened.id) == ["opened", "acknowledged", "resolved"]


async def test_restart_reads_open_incidents_back(store, clock, metrics) -> None:
    first = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    await first.load()
    opened = await first.on_check(event(clock, DOWN))
    second = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    await second.load()
    assert second.open_for("docs") == opened
    # still failing after the restart: no second incident
    assert await second.on_check(event(clock, DOWN, DOWN)) == opened
    assert len(store.incidents) == 1
