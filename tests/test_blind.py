"""Blind is not down: a check the monitor cannot observe, and the monitor-health incident
that says so instead of paging people for the asset. Fake clock, memory store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.checks.github_actions import GithubActionsCheckConfig
from monitor.checks.npm import NpmCheckConfig
from monitor.config.loader import load_config
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import CheckConfigBase, Defaults
from monitor.core.model import CheckResult, FailureKind, IncidentStatus, Outcome, Severity
from monitor.engine.pipeline import ResultHandler
from monitor.engine.state import blindness, step
from monitor.incidents.manager import HEALTH_SOURCE, IncidentManager
from monitor.incidents.rules import SeverityRule, Situation, classify
from monitor.paging.escalation import EscalationConfig
from monitor.paging.outbox import Outbox
from monitor.paging.pager import Pager, from_payload
from tests.fakes import FakeClock, MemoryStore, settle

ROOT = Path(__file__).resolve().parent.parent


def gha(name: str, threshold: int = 1, **fields: Any) -> CheckConfigBase:
    return GithubActionsCheckConfig(
        name=name, kind="github_actions", repo="winglang/wing", workflow="build.yml",
        failure_threshold=threshold, success_threshold=1, **fields,
    ).resolved(Defaults())  # fmt: skip


def npm(name: str) -> CheckConfigBase:
    return NpmCheckConfig(
        name=name, kind="npm", package="winglang", failure_threshold=1, success_threshold=1
    ).resolved(Defaults())


def result(
    clock: FakeClock,
    config: CheckConfigBase,
    outcome: Outcome,
    failure: FailureKind | None = None,
    message: str = "",
    **details: Any,
) -> CheckResult:
    return CheckResult(
        config.name, config.kind, outcome, failure, message or str(failure), clock.now(), 0.1,
        details=details,
    )  # fmt: skip


LIMITED = (Outcome.DOWN, FailureKind.RATE_LIMITED)


class TestBlindness:
    @pytest.mark.parametrize(
        ("kind", "failure", "blind"),
        [
            ("github_actions", "rate_limited", True),
            ("npm", "rate_limited", True),
            ("npm", "auth", True),
            ("http", "monitor_resources", True),
            ("github_actions", "unavailable", True),  # only the monitor's window on the runs
            ("statuspage", "unavailable", True),
            ("npm", "unavailable", False),  # the registry users install from: their outage too
            ("vscode_marketplace", "unavailable", False),
            ("http", "connect", False),
            ("http", "http_status", False),
            ("github_actions", "run_failed", False),
            ("github_actions", None, False),
        ],
    )
    def test_which_failures_are_blindness(
        self, kind: str, failure: str | None, blind: bool
    ) -> None:
        assert blindness(kind, failure) is blind

    def test_the_failure_kind_exists(self) -> None:
        assert FailureKind("monitor_resources") is FailureKind.MONITOR_RESOURCES


class TestStateMachine:
    def run(self, clock: FakeClock, state: CheckState, outcome: Outcome,
            failure: FailureKind | None, cause: str | None = None, n: int = 2) -> CheckState:  # fmt: skip
        config = gha("canary")
        return step(state, result(clock, config, outcome, failure), n, n, cause)

    def test_a_degraded_check_stays_degraded_through_a_rate_limit(self, clock) -> None:
        degraded = (Outcome.DEGRADED, FailureKind.WORKFLOW_DISABLED)
        s = CheckState()
        for _ in range(2):
            s = self.run(clock, s, *degraded)
        assert s.state is AlertState.DEGRADED
        since = s.since
        for _ in range(5):
            s = self.run(clock, s, *LIMITED, cause="gh")
        assert s.state is AlertState.BLIND
        assert (s.seen, s.cause) == (AlertState.DEGRADED, "gh")
        s = self.run(clock, s, *degraded)  # sight returns: what was believed, not down
        assert s.state is AlertState.DEGRADED
        assert s.since == since  # still degraded since it first was
        assert (s.blinds, s.seen, s.cause) == (0, None, None)

    def test_blind_runs_take_threshold_and_leave_streaks_alone(self, clock) -> None:
        s = CheckState()
        s = self.run(clock, s, Outcome.DOWN, FailureKind.RUN_FAILED)
        s = self.run(clock, s, *LIMITED, cause="gh")
        assert s.state is AlertState.UNKNOWN  # one blind run: not yet blind
        s = self.run(clock, s, Outcome.DOWN, FailureKind.RUN_FAILED)
        assert s.state is AlertState.DOWN  # the streak of two ran across the blind run

    def test_an_up_check_comes_back_up(self, clock) -> None:
        s = CheckState()
        s = self.run(clock, s, Outcome.UP, None)
        s = self.run(clock, s, *LIMITED, cause="gh")
        s = self.run(clock, s, *LIMITED, cause="gh")
        assert s.state is AlertState.BLIND
        s = self.run(clock, s, Outcome.UP, None)
        assert s.state is AlertState.UP


@pytest.fixture
async def world(clock: FakeClock, metrics):
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    config = load_config(ROOT / "monitors.yaml", env={})
    handler.configure(config.severity, [])
    return store, manager, handler


class TestPipeline:
    async def test_rate_limited_checks_go_blind_and_one_health_incident_opens(
        self, world, clock
    ) -> None:
        store, _manager, handler = world
        checks = [gha("main-build"), gha("pr-builds"), gha("canary")]
        reset = clock.now() + timedelta(minutes=44)
        for _ in range(3):
            for c in checks:
                await handler(c, result(clock, c, *LIMITED, "GitHub API rate limit exhausted",
                                        rate_limit_reset=reset))  # fmt: skip
            await clock.advance(60)
        assert {n: s.state for n, s in handler.states.items()} == dict.fromkeys(
            ("main-build", "pr-builds", "canary"), AlertState.BLIND
        )
        assert handler.history["canary"].runs()[-1]["outcome"] == "blind"  # a grey bar
        text = handler.metrics.series.text()
        assert (
            'monitor_check_alert_state{check="canary",kind="github_actions",state="blind"} 1.0'
            in text
        )
        incidents = list(store.incidents.values())
        assert len(incidents) == 1  # nothing for the assets
        health = incidents[0]
        assert health.source == HEALTH_SOURCE
        assert (
            health.title
            == "GitHub API (api.github.com): rate limit reached until 12:44 UTC; 3 checks blind"
        )
        assert health.message.endswith("3 checks blind: canary, main-build, pr-builds")
        # Sight returns check by check; the incident resolves with the last.
        for i, c in enumerate(checks):
            await handler(c, result(clock, c, Outcome.UP, None, "ok"))
            current = store.incidents[health.id]
            assert current.status is (
                IncidentStatus.RESOLVED if i == 2 else IncidentStatus.TRIGGERED
            )
        texts = [(e.event, e.text) for e in store.entries if e.incident_id == health.id]
        assert [event for event, _ in texts] == [
            "opened", *["blind_checks"] * 4, "sight_restored", "resolved",
        ]  # fmt: skip
        assert texts[-3][1].endswith("1 check blind: canary")

    async def test_a_failing_asset_keeps_its_incident_through_blindness(self, world, clock) -> None:
        store, manager, handler = world
        main = gha("main-build")
        await handler(main, result(clock, main, Outcome.DOWN, FailureKind.RUN_FAILED, "failed"))
        incident = manager.open_for("main-build")
        assert incident is not None
        assert incident.severity is Severity.P1
        await handler(main, result(clock, main, *LIMITED, "limited"))
        assert manager.open_for("main-build") == store.incidents[incident.id]
        assert store.incidents[incident.id].message == "failed"  # not the monitor's trouble
        assert store.incidents[incident.id].status is IncidentStatus.TRIGGERED
        await handler(main, result(clock, main, Outcome.UP, None, "ok"))
        assert store.incidents[incident.id].status is IncidentStatus.RESOLVED
        events = [e.event for e in store.entries if e.incident_id == incident.id]
        assert events == ["opened", "blind", "recovered", "resolved"]

    async def test_a_rule_may_opt_in_to_blind(self, world, clock) -> None:
        _store, manager, handler = world
        handler.configure(
            [SeverityRule.model_validate({"match": {"states": ["blind"]}, "severity": "P2"})], []
        )
        main = gha("main-build")
        await handler(main, result(clock, main, *LIMITED, "limited"))
        incident = manager.open_for("main-build")
        assert incident is not None
        assert incident.severity is Severity.P2
        assert incident.title == "main-build is blind"

    async def test_an_unavailable_registry_stays_the_users_failure(self, world, clock) -> None:
        _store, manager, handler = world
        package = npm("npm-winglang")
        await handler(package, result(clock, package, Outcome.DOWN, FailureKind.UNAVAILABLE, "503"))
        assert handler.states["npm-winglang"].state is AlertState.DOWN
        assert handler.last["npm-winglang"].details["upstream_unavailable"] == "registry.npmjs.org"
        incident = manager.open_for("npm-winglang")
        assert incident is not None
        assert incident.severity is Severity.P2

    async def test_blind_state_survives_a_restart(self, world, clock, metrics) -> None:
        store, manager, handler = world
        canary = gha("canary")
        degraded = (Outcome.DEGRADED, FailureKind.WORKFLOW_DISABLED)
        await handler(canary, result(clock, canary, *degraded))
        await handler(canary, result(clock, canary, *LIMITED))
        again = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
        await again.load([canary])
        assert again.states["canary"].state is AlertState.BLIND
        assert again.states["canary"].seen is AlertState.DEGRADED
        await again(canary, result(clock, canary, *degraded))
        assert again.states["canary"].state.value == "degraded"
        assert manager.open_incidents == []  # the health incident resolved, nothing else

    async def test_removing_the_last_blind_check_resolves_the_health_incident(
        self, world, clock
    ) -> None:
        store, manager, handler = world
        main = gha("main-build")
        await handler(main, result(clock, main, *LIMITED, "limited"))
        (health,) = manager.open_incidents
        await handler.forget(["main-build"])
        assert store.incidents[health.id].status is IncidentStatus.RESOLVED


async def test_a_new_cause_moves_the_check_to_its_own_health_incident(world, clock) -> None:
    store, manager, handler = world
    main = gha("main-build")
    await handler(main, result(clock, main, *LIMITED, "limited"))
    (limited,) = manager.open_incidents
    await handler(main, result(clock, main, Outcome.DOWN, FailureKind.AUTH, "refused"))
    (refused,) = manager.open_incidents
    assert store.incidents[limited.id].status is IncidentStatus.RESOLVED
    assert refused.key == "monitor-health:auth:api.github.com"
    assert handler.states["main-build"].state is AlertState.BLIND


async def test_no_secret_in_a_health_incident(world, clock) -> None:
    store, manager, handler = world
    token, password = "ghp_PLANTEDsecret0123456789", "hunter2PLANTED"
    main = gha("main-build", token=token, api_url=f"https://bot:{password}@ghe.example.org/api/v3")
    await handler(
        main, result(clock, main, Outcome.DOWN, FailureKind.AUTH, "GitHub API refused the token")
    )
    (health,) = manager.open_incidents
    assert (
        health.title
        == "GitHub API (ghe.example.org): refuses the monitor's credentials; 1 check blind"
    )
    shown = repr(health) + repr(store.entries)
    assert token not in shown
    assert password not in shown


def test_monitor_check_shows_blind_apart_from_failed(clock) -> None:
    from monitor.cli.local import _table

    main, site = gha("main-build"), npm("npm-winglang")
    text = _table([
        result(clock, main, *LIMITED, "GitHub API rate limit exhausted"),
        result(clock, site, Outcome.DOWN, FailureKind.TAG_MISSING, "no latest"),
    ])  # fmt: skip
    assert "blind: rate_limited" in text
    assert "down: tag_missing" in text
    assert text.endswith("0 ok, 1 failed, 1 blind (the monitor could not see)")


class TestBundledConfig:
    """monitors.yaml pages people only for what the Wing operations overview calls P0/P1,
    and never for the monitor's own blindness."""

    # (check pattern, failure) pairs allowed to be P0/P1: cannot install Wing (P0), main
    # build broken, sites down, the playground down for hours (P1).
    PAGED = {
        "npm-winglang": {"not_found", "tag_missing", "tarball", "integrity"},
        "npm-winglang-sdk": {"not_found", "tag_missing", "tarball", "integrity"},
        "canary": {"run_failed", "failure_rate"},
        "main-build": {"run_failed", "failure_rate"},
    }
    SITES = {"homepage", "docs", "playground"}

    def test_only_p0_p1_pages_a_person(self) -> None:
        config = load_config(ROOT / "monitors.yaml", env={})
        policies = config.escalation
        for severity in ("P2",):
            chosen = policies.policy_for(Severity(severity))
            assert chosen is not None
            assert all(s.page is None for s in chosen[1].steps), severity
        health = policies.health_policy({"console": "console"})
        assert health is not None
        assert all(s.page is None for s in health[1].steps)
        clock_now = FakeClock().now()
        for check in config.checks:
            for failure in [None, *(k.value for k in FailureKind)]:
                blind = blindness(check.kind, failure)
                states = [AlertState.BLIND] if blind else [AlertState.DOWN, AlertState.DEGRADED]
                for state in states:
                    for failing_for in (timedelta(0), timedelta(days=1)):
                        verdict = classify(config.severity, Situation(
                            check=check.name, kind=check.kind, tags=frozenset(check.tags),
                            failure=failure, state=state, failing_for=failing_for, now=clock_now,
                        ))  # fmt: skip
                        if verdict.severity not in (Severity.P0, Severity.P1):
                            continue
                        where = (check.name, failure, state.value)
                        assert not blind, where
                        if check.name in self.SITES:
                            assert state is AlertState.DOWN or check.name == "playground", where
                        else:
                            assert failure in self.PAGED.get(check.name, set()), where

    def test_explain_rate_limited_is_not_p1(self, capsys) -> None:
        from monitor.cli.main import main

        for failure in ("rate_limited", "unavailable", "auth"):
            code = main(
                ["explain", "main-build", "--failure", failure, "-c", str(ROOT / "monitors.yaml")]
            )
            out = capsys.readouterr().out
            assert code == 0
            assert "→ ignore (no incident)" in out, out
            assert "blind: the monitor cannot see main-build" in out
            assert "post to console" in out


ESCALATION = EscalationConfig.model_validate({
    "channel": "slack",
    "page_via": ["pd"],
    "policies": {"default": {"steps": [{"post": "slack"}, {"page": ["alice"]}]}},
})  # fmt: skip


async def test_health_incidents_post_to_the_channel_and_page_nobody(clock, metrics) -> None:
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    sent: list[tuple[str, str]] = []

    async def deliver(notifier: str, payload: str) -> None:
        sent.append((notifier, from_payload(payload).event.value))

    outbox = Outbox(store, clock, metrics, deliver, ["slack", "pd"])
    pager = Pager(
        store, clock, manager, outbox, ESCALATION, None, {"slack": "slack", "pd": "pagerduty"}
    )
    await manager.load()
    await pager.load()
    tasks = [asyncio.create_task(outbox.run()), asyncio.create_task(pager.run())]
    await settle()
    await manager.monitor_health(
        "monitor-health:x", "x: rate limit reached; 1 check blind", "m", ["a"]
    )
    await clock.advance(60 * 60)
    await manager.monitor_health("monitor-health:x", "", "", [])
    await clock.advance(60)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert [n for n, _ in sent if n != "slack"] == []  # not even a resolve where nothing began
    assert sent[0] == ("slack", "trigger")
    assert ("slack", "resolve") in sent


def test_monitor_health_names_a_policy() -> None:
    with pytest.raises(ValueError, match="monitor_health: no policy named 'nope'"):
        EscalationConfig.model_validate({"monitor_health": "nope"})
    config = EscalationConfig.model_validate({
        "monitor_health": "loud",
        "policies": {"loud": {"steps": [{"page": "primary"}]}},
    })  # fmt: skip
    assert config.health_policy({}) == ("loud", config.policies["loud"])


def test_without_a_channel_monitor_health_posts_where_nobody_is_paged() -> None:
    config = EscalationConfig.model_validate({"page_via": ["mail"]})
    types = {"pd": "pagerduty", "mail": "email", "hook": "webhook", "chat": "discord"}
    chosen = config.health_policy(types)
    assert chosen is not None
    assert [s.post for s in chosen[1].steps] == ["hook", "chat"]
    assert EscalationConfig().health_policy({"pd": "pagerduty"}) is None


RUNS = st.lists(st.sampled_from(["up", "down", "degraded", "blind"]), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(runs=RUNS, fail_n=st.integers(1, 4), ok_n=st.integers(1, 4))
def test_blind_runs_are_transparent(runs: list[str], fail_n: int, ok_n: int) -> None:
    """Once the monitor sees again, what it believes is what it would believe had the
    blind runs never happened: blindness never invents a state for the asset."""
    clock = FakeClock()
    config = gha("c")
    outcomes = {
        "up": (Outcome.UP, None), "down": (Outcome.DOWN, FailureKind.RUN_FAILED),
        "degraded": (Outcome.DEGRADED, FailureKind.STALE), "blind": LIMITED,
    }  # fmt: skip
    with_blind, without = CheckState(), CheckState()
    for i, run in enumerate([*runs, "up"] if runs[-1] == "blind" else runs):
        r = CheckResult(
            "c", config.kind, *outcomes[run], "m", clock.now() + timedelta(minutes=i), 0.1
        )
        cause = "gh" if run == "blind" else None
        with_blind = step(with_blind, r, fail_n, ok_n, cause)
        if cause is None:
            without = step(without, r, fail_n, ok_n)
            assert with_blind == without
        else:
            assert with_blind.state in (without.state, AlertState.BLIND)
