"""SLOs and error budgets: config, the figures (budget left, multiwindow burn rates) over
synthetic histories with an injected clock, their edges, the metrics, severity rules on
`burn_rate`, burn incidents, and what the asset page and the history API show."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from monitor.app import App
from monitor.config.loader import parse_config
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import SloConfig
from monitor.core.errors import ConfigError, StoreError
from monitor.core.model import CheckResult, FailureKind, IncidentStatus, Outcome, Severity
from monitor.engine.history import HistoryWriter, Rollups
from monitor.engine.slo import (
    BURN_CAP,
    Objective,
    SloEvaluator,
    SloReading,
    _Ring,
    budget_remaining,
    burn_level,
    burn_rate,
    objectives,
)
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule, Situation, classify
from monitor.metrics.exporter import Metrics
from monitor.metrics.slo import SloMetrics
from monitor.store.base import MINUTE, HistoryBucket
from monitor.web.slo import render_slo, slo_fragment, slo_json
from tests.fakes import FakeClock, MemoryStore
from tests.proc import run_cli, wait_for

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # FakeClock's start, on an hour
S0 = int(T0.timestamp())

CONFIG = """
checks:
  - name: web
    kind: http
    url: https://example.org/
    tags: [site]
    slo: {target: 99%, window: 30d}
  - name: docs
    kind: http
    url: https://example.org/docs
    tags: [site]
  - name: api
    kind: http
    url: https://example.org/api
    group: backend
groups:
  site:
    description: The website
    slo: {target: 0.995, window: 7d}
"""

RULES = [
    SeverityRule.model_validate(r)
    for r in (
        {"name": "budget-fast", "match": {"burn_rate": "fast"}, "severity": "P1"},
        {"name": "budget-slow", "match": {"burn_rate": "slow"}, "severity": "P2"},
        {"name": "everything", "severity": "P0"},  # a check's failures: never a burn's
    )
]


# ---- config -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ratio"),
    [("99.9%", 0.999), (" 99.95% ", 0.9995), (0.999, 0.999), ("100%", 1.0), (1, 1.0)],
)
def test_a_target_is_a_percentage_or_a_ratio(target: object, ratio: float) -> None:
    assert SloConfig.model_validate({"target": target}).target == ratio
    assert SloConfig.model_validate({"target": target}).window == timedelta(days=30)


@pytest.mark.parametrize(
    ("slo", "words"),
    [
        ("{target: 99.9}", "above 1: write 99.9% for a percentage"),
        ("{target: 0%}", "must be above 0 % and at most 100 %"),
        ("{target: 100.1%}", "must be above 0 % and at most 100 %"),
        ("{target: -0.5}", "must be above 0 % and at most 100 %"),
        ("{target: .nan}", "numbers must be finite"),
        ("{target: high}", "write a percentage (99.9%) or a ratio (0.999)"),
        ("{target: true}", "write a percentage (99.9%) or a ratio (0.999)"),
        ("{target: 99%, window: 91d}", "window 91d is outside 1h to 90d"),
        ("{target: 99%, window: 30m}", "window 30m is outside 1h to 90d"),
        ("{target: 99%, window: 30}", "expected a duration with a unit"),
        ("{window: 30d}", "target"),
        ("{target: 99%, windw: 30d}", "windw"),
    ],
)
def test_bad_slo_values_are_located_errors(slo: str, words: str) -> None:
    text = CONFIG.replace("slo: {target: 99%, window: 30d}", f"slo: {slo}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "monitors.yaml", {})
    [issue] = caught.value.issues
    assert issue.file == "monitors.yaml"
    assert issue.line == 7  # the check's `slo:` line
    assert "checks[0].slo" in str(issue)
    assert words in str(issue)


def test_a_bad_group_slo_is_located() -> None:
    text = CONFIG.replace("slo: {target: 0.995, window: 7d}", "slo: {target: 2}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "monitors.yaml", {})
    [issue] = caught.value.issues
    assert (issue.line, issue.path) == (19, "groups.site.slo.target")
    assert "above 1" in str(issue)


def test_objectives_of_a_config_checks_and_groups() -> None:
    config = parse_config(CONFIG, "monitors.yaml", {})
    found = {(o.scope, o.name): o for o in objectives(config.checks, config.groups)}
    assert set(found) == {("check", "web"), ("group", "site")}
    assert found["check", "web"].checks == ("web",)
    assert found["check", "web"].slo.target == 0.99
    assert found["group", "site"].checks == ("web", "docs")  # the group's members
    assert found["group", "site"].slo.window == timedelta(days=7)
    disabled = CONFIG.replace("    url: https://example.org/docs\n",
                              "    url: https://example.org/docs\n    enabled: false\n")  # fmt: skip
    config = parse_config(disabled, "monitors.yaml", {})
    site = next(o for o in objectives(config.checks, config.groups) if o.scope == "group")
    assert site.checks == ("web",)


# ---- pure figures -------------------------------------------------------------------


def test_burn_rate_and_budget() -> None:
    assert burn_rate(990, 10, 0.99) == pytest.approx(1.0)  # spends exactly the budget
    assert burn_rate(900, 100, 0.999) == pytest.approx(100.0)
    assert budget_remaining(995, 5, 0.99) == pytest.approx(0.5)
    assert budget_remaining(980, 20, 0.99) == pytest.approx(-1.0)  # overspent: below 0
    assert budget_remaining(1000, 0, 0.99) == 1.0
    # No run that could look: no figure at all (JSON null, no Prometheus sample).
    assert burn_rate(0, 0, 0.999) is None
    assert budget_remaining(0, 0, 0.999) is None


def test_a_target_of_100_percent_has_a_zero_budget() -> None:
    assert burn_rate(1000, 0, 1.0) == 0.0
    assert budget_remaining(1000, 0, 1.0) == 1.0
    assert burn_rate(999_999, 1, 1.0) == BURN_CAP  # one bad run: capped, never inf or NaN
    assert budget_remaining(999_999, 1, 1.0) == 0.0
    assert math.isfinite(BURN_CAP)
    assert BURN_CAP > 14.4


@pytest.mark.parametrize(
    ("rates", "level"),
    [
        ({"1h": 15, "5m": 15}, "fast"),
        ({"1h": 15, "5m": 14.4}, None),  # above, not at
        ({"1h": 15, "5m": 2, "6h": 7, "30m": 7}, "fast"),
        ({"1h": 15, "5m": 2, "6h": 7, "30m": 5}, None),
        ({"1h": 2, "5m": 30, "6h": 2, "3d": 1.5}, "slow"),  # the 5 m spike alone pages nothing
        ({"3d": 1.5, "6h": 0.5}, None),  # the budget burned, but not any more
        ({"1h": None, "5m": 20}, None),  # no data in one window of the pair
        ({}, None),
    ],
)
def test_burn_levels_follow_the_multiwindow_pairs(rates: dict[str, Any], level: str | None) -> None:
    full = {"5m": 0, "30m": 0, "1h": 0, "6h": 0, "3d": 0} | rates
    assert burn_level(full) == level


# ---- rules --------------------------------------------------------------------------


def burn(level: str | None, *, check: str = "web", tags: Iterable[str] = ()) -> Situation:
    return Situation(check, "http", frozenset(tags), "slo_burn" if level else "connect",
                     AlertState.DOWN, timedelta(minutes=5), T0, burn_rate=level)  # type: ignore[arg-type]  # fmt: skip


def test_burn_rate_rules_match_burns_only() -> None:
    assert classify(RULES, burn("fast")).severity is Severity.P1
    assert classify(RULES, burn("slow")).severity is Severity.P2
    # A check's own failure never matches a burn rule, and a plain rule no burn.
    plain = classify(RULES, burn(None))
    assert (plain.severity, plain.rule) == (Severity.P0, "everything")
    assert "matches an SLO burning its budget only" in plain.trace[0]


def test_slow_matches_a_fast_burn_too_and_no_rule_opens_nothing() -> None:
    only_slow = [RULES[1]]
    assert classify(only_slow, burn("fast")).severity is Severity.P2
    only_fast = [RULES[0]]
    verdict = classify(only_fast, burn("slow"))
    assert verdict.severity is None
    assert verdict.trace == (
        "severity[0] budget-fast: no match: burning slow, wants fast",
        "default: no rule matched; burning slow → ignore",
    )
    plain_only = [RULES[2]]
    assert classify(plain_only, burn("fast")).severity is None


def test_burn_rules_combine_with_the_other_fields() -> None:
    rule = SeverityRule.model_validate(
        {"match": {"burn_rate": ["fast"], "tags": ["site"], "for": "10m"}, "severity": "P0"}
    )
    assert classify([rule], burn("fast", tags=["site"])).severity is None  # burning 5 m only
    long = Situation("web", "http", frozenset({"site"}), "slo_burn", AlertState.DOWN,
                     timedelta(minutes=11), T0, burn_rate="fast")  # fmt: skip
    assert classify([rule], long).severity is Severity.P0
    with pytest.raises(ValidationError, match="burn_rate"):
        SeverityRule.model_validate({"match": {"burn_rate": "quick"}, "severity": "P1"})


# ---- the evaluator over synthetic histories -----------------------------------------


def objective(name: str = "web", target: float = 0.99, window: str = "30d",
              checks: tuple[str, ...] = ("web",), scope: str = "check") -> Objective:  # fmt: skip
    slo = SloConfig.model_validate({"target": target, "window": window})
    return Objective(name, scope, slo, checks, "http" if scope == "check" else "group")  # type: ignore[arg-type]


async def history(store: MemoryStore, check: str, minutes_ago: Iterable[int], up: int,
                  down: int, blind: int = 0) -> None:  # fmt: skip
    """Writes one minute bucket per minute ago, as the history writer would."""
    await store.add_history([
        HistoryBucket(check, MINUTE, S0 - m * MINUTE, up=up, down=down, blind=blind)
        for m in minutes_ago
    ])  # fmt: skip


@pytest.fixture
def world(
    clock: FakeClock, metrics: Metrics
) -> tuple[MemoryStore, Rollups, IncidentManager, SloEvaluator]:
    store, rollups = MemoryStore(), Rollups()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    evaluator = SloEvaluator(store, clock, metrics.slo, rollups, incidents=manager)
    return store, rollups, manager, evaluator


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_no_data_no_figures_and_no_series(world, metrics) -> None:
    store, _, _, evaluator = world
    evaluator.configure([objective()])
    await history(store, "web", range(1, 30), up=0, down=0, blind=3)  # blind-only: no look
    await evaluator.evaluate()
    [reading] = evaluator.readings("web")
    assert (reading.good, reading.bad, reading.remaining, reading.level) == (0, 0, None, None)
    assert set(reading.burn.values()) == {None}
    assert sample(metrics, "monitor_slo_target", slo="web", scope="check") == 0.99
    exposition = generate_latest(metrics.registry).decode()
    assert "monitor_slo_error_budget_remaining{" not in exposition
    assert "monitor_slo_burn_rate{" not in exposition
    assert "NaN" not in exposition


async def test_a_window_longer_than_the_history_is_judged_on_what_there_is(world, metrics) -> None:
    store, _, _, evaluator = world
    evaluator.configure([objective(window="30d")])
    # Two hours of history, 0.5 % down: half the 1 % budget.
    await history(store, "web", range(1, 121), up=199, down=1)
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.good, r.bad) == (120 * 199, 120)
    assert r.remaining == pytest.approx(0.5)
    assert r.burn["3d"] == pytest.approx(0.5)
    assert r.burn["5m"] == pytest.approx(0.5)
    assert r.level is None
    labels = {"slo": "web", "scope": "check"}
    assert sample(metrics, "monitor_slo_error_budget_remaining", **labels) == pytest.approx(0.5)
    assert sample(metrics, "monitor_slo_burn_rate", window="6h", **labels) == pytest.approx(0.5)


async def test_a_fast_burn_opens_a_p1_incident_and_it_resolves_when_the_burn_stops(
    world, clock, metrics
) -> None:
    store, rollups, manager, evaluator = world
    evaluator.configure([objective(target=0.99)], RULES)
    await history(store, "web", range(61, 60 * 24 * 3), up=100, down=0)  # three good days
    await history(store, "web", range(1, 61), up=80, down=20)  # the last hour: 20 % down
    await store.prune_history(S0)  # minute rows older than 48 h go, as in the real store
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert r.burn["1h"] == pytest.approx(20.0)
    assert r.burn["5m"] == pytest.approx(20.0)
    assert r.level == "fast"
    [incident] = manager.open_incidents
    assert (incident.severity, incident.rule, incident.key) == (
        Severity.P1,
        "budget-fast",
        "slo:check:web",
    )
    assert incident.failure == FailureKind.SLO_BURN.value
    assert "web burns its error budget fast: 1h and 5m burn rates above 14.4x" in incident.message
    # The burn goes on: nothing new is written a minute.
    before = len(await store.timeline(incident.id))
    await evaluator.evaluate()
    assert len(await store.timeline(incident.id)) == before
    # Fifteen minutes of good runs, counted as they are stored: the 5 m window is clean.
    writer = HistoryWriter(rollups, store, clock)
    writer.stored.append(evaluator.stored)
    for second in range(0, 15 * 60, 10):
        rollups.add(
            CheckResult("web", "http", Outcome.UP, None, "", T0 + timedelta(seconds=second), 0.1)
        )
    await clock.advance(15 * 60)
    await writer.flush()
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert r.burn["5m"] == 0.0
    assert r.burn["1h"] > 14.4
    assert r.burn["6h"] < 6
    assert r.burn["3d"] < 1
    assert r.level is None  # one bad hour in three days: not even slow
    assert manager.open_incidents == []
    [resolved] = await manager.find(statuses=[IncidentStatus.RESOLVED])
    assert resolved.id == incident.id


async def test_a_slow_burn_is_p2(world) -> None:
    store, _, manager, evaluator = world
    evaluator.configure([objective(target=0.99)], RULES)
    # Three days at 2 % down: twice the budget's pace, never fast.
    await history(store, "web", range(1, 60 * 24 * 3), up=98, down=2)
    await store.prune_history(S0)
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert r.burn["3d"] == pytest.approx(2.0, rel=0.02)
    assert r.burn["6h"] == pytest.approx(2.0)
    assert r.level == "slow"
    assert [i.severity for i in manager.open_incidents] == [Severity.P2]
    assert r.remaining == pytest.approx(-1.0, rel=0.02)  # 30 d of 1 %: overspent on 3 days' data


async def test_a_target_of_100_percent_burns_at_the_cap(world, metrics) -> None:
    store, _, manager, evaluator = world
    evaluator.configure([objective(target=1.0)], RULES)
    await history(store, "web", range(1, 120), up=10, down=0)
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.remaining, r.burn["1h"], r.level) == (1.0, 0.0, None)
    await history(store, "web", [0], up=9, down=1)  # the current minute, already stored
    evaluator.configure([objective(target=1.0, window="7d")], RULES)  # changed: read again
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.remaining, r.burn["5m"], r.level) == (0.0, BURN_CAP, "fast")
    assert (
        sample(metrics, "monitor_slo_burn_rate", slo="web", scope="check", window="5m") == BURN_CAP
    )
    assert [i.severity for i in manager.open_incidents] == [Severity.P1]


async def test_unwritten_minutes_count_and_a_stored_batch_counts_once(world, clock) -> None:
    store, rollups, _, evaluator = world
    evaluator.configure([objective()])
    writer = HistoryWriter(rollups, store, clock)
    writer.stored.append(evaluator.stored)
    await evaluator.evaluate()  # started on an empty store
    for second, outcome in ((1, Outcome.UP), (2, Outcome.DOWN), (3, Outcome.DEGRADED)):
        rollups.add(
            CheckResult("web", "http", outcome, None, "", T0 + timedelta(seconds=second), 0.1)
        )
    rollups.add(CheckResult("web", "http", Outcome.DOWN, None, "", T0, 0.1), blind=True)
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.good, r.bad) == (2, 1)  # the blind run is nobody's
    await clock.advance(60)
    await writer.flush()  # now stored, and no longer in the rollups
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.good, r.bad) == (2, 1)
    assert r.burn["5m"] == pytest.approx(100 / 3)


async def test_a_group_counts_every_check_of_it(world, metrics) -> None:
    store, _, _, evaluator = world
    site = objective("site", target=0.995, window="7d", checks=("web", "docs"), scope="group")
    evaluator.configure([objective(), site])
    await history(store, "web", range(1, 61), up=100, down=0)
    await history(store, "docs", range(1, 61), up=99, down=1)
    await history(store, "api", range(1, 61), up=0, down=100)  # not in the group
    await evaluator.evaluate()
    assert evaluator.reading("group", "site") is not None
    group = evaluator.reading("group", "site")
    assert group is not None
    assert (group.good, group.bad) == (60 * 199, 60)
    assert group.burn["1h"] == pytest.approx((1 / 200) / 0.005)
    assert [r.objective.scope for r in evaluator.readings("docs")] == ["group"]
    assert [r.objective.scope for r in evaluator.readings("web")] == ["check", "group"]
    assert sample(metrics, "monitor_slo_target", slo="site", scope="group") == 0.995


async def test_a_removed_objective_loses_its_series_and_its_incident(world, metrics) -> None:
    store, _, manager, evaluator = world
    evaluator.configure([objective()], RULES)
    await history(store, "web", range(1, 61), up=50, down=50)
    await evaluator.evaluate()
    assert len(manager.open_incidents) == 1
    evaluator.configure([], RULES)
    assert sample(metrics, "monitor_slo_target", slo="web", scope="check") is None
    assert sample(metrics, "monitor_slo_burn_rate", slo="web", scope="check", window="1h") is None
    await evaluator.evaluate()
    assert manager.open_incidents == []
    assert evaluator.readings("web") == []


# ---- what the asset page and the API show ------------------------------------------


def test_the_fragment_says_target_window_budget_and_burn_rates_escaped() -> None:
    o = objective("<b>site</b>", target=0.999, checks=("web",), scope="group")
    reading = SloReading(o, T0, 9980, 20, -1.0,
                         {"5m": 30.0, "30m": 20.0, "1h": 20.04, "6h": None, "3d": 2.0}, "fast")  # fmt: skip
    html = render_slo([o], {o.key: reading})
    assert "group &lt;b&gt;site&lt;/b&gt;: 99.9% over 30d" in html
    assert "<b>site" not in html
    assert "-100.0% of the error budget left (20 of 10,000 runs down)" in html
    assert "<th>5m</th><th>30m</th><th>1h</th><th>6h</th><th>3d</th>" in html
    assert "<td>30.0x</td><td>20.0x</td><td>20.0x</td><td>no data</td><td>2.0x</td>" in html
    assert '<span class="burning fast">burning fast</span>' in html
    assert "<script" not in html
    assert "style=" not in html
    assert "Not evaluated yet." in render_slo([o], {})
    assert render_slo([], {}) == ""


async def test_the_fragment_and_json_of_a_live_evaluator(world) -> None:
    store, _, _, evaluator = world
    evaluator.configure([objective(target=1.0)])
    assert "Not evaluated yet." in slo_fragment(evaluator, "web")
    [before] = slo_json(evaluator)("web")
    assert before["error_budget_remaining"] is None
    assert before["at"] is None
    await history(store, "web", range(1, 10), up=5, down=1)
    await evaluator.evaluate()
    html = slo_fragment(evaluator, "web")
    assert "this asset: 100% over 30d" in html
    assert "<td>budget is zero</td>" in html
    [answer] = slo_json(evaluator)("web")
    assert answer == {
        "name": "web", "scope": "check", "target_percent": 100.0, "window": "30d",
        "at": "2026-11-02T12:00:00+00:00", "runs": 54, "bad_runs": 9,
        "error_budget_remaining": 0.0,
        "burn_rate": {"5m": BURN_CAP, "30m": BURN_CAP, "1h": BURN_CAP, "6h": BURN_CAP, "3d": BURN_CAP},
        "burning": "fast",
    }  # fmt: skip
    assert slo_json(evaluator)("docs") == []
    assert slo_fragment(evaluator, "docs") == ""


def test_the_metrics_table_documents_every_slo_family() -> None:
    registry = CollectorRegistry()
    SloMetrics(registry)
    families = {m.name for m in registry.collect()}
    assert families == {"monitor_slo_target", "monitor_slo_error_budget_remaining",
                        "monitor_slo_burn_rate"}  # fmt: skip
    table = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| `")}
    assert {f"`{name}`" for name in families} <= rows


EXPLAIN = (
    CONFIG
    + """
severity:
  - {name: budget-fast, match: {burn_rate: fast}, severity: P1}
  - {name: site-budget, match: {burn_rate: slow, kinds: [group]}, severity: P2}
  - {name: all-failures, severity: P0}
"""
)


async def test_explain_a_burn_of_a_check_or_a_group(tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(EXPLAIN)
    at = ("--at", "2026-11-03T12:00")
    code, out, err = await run_cli("explain", "-c", str(config), "web", "--burn-rate", "fast", *at)
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0] == "the check web burning its error budget fast, for 0s, at 2026-11-03 12:00 UTC:"
    )
    assert lines[1:3] == ["  severity[0] budget-fast: match → P1", "→ P1 (rule budget-fast)"]
    code, out, _ = await run_cli("explain", "-c", str(config), "site", "--burn-rate", "slow", *at)
    assert out.splitlines()[1:4] == [
        "  severity[0] budget-fast: no match: burning slow, wants fast",
        "  severity[1] site-budget: match → P2",
        "→ P2 (rule site-budget)",
    ]
    code, out, _ = await run_cli("explain", "-c", str(config), "docs", "--burn-rate", "slow", *at)
    assert "  note: docs has no slo: it never burns" in out.splitlines()
    assert "→ ignore (no incident) (rule default)" in out.splitlines()
    code, _, err = await run_cli("explain", "-c", str(config), "nope", "--burn-rate", "fast")
    assert (code, err.strip()) == (2, "unknown check or group: nope")


async def test_the_daemon_pages_on_the_burn_not_on_the_failures(
    aiohttp_server, tmp_path: Path
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/", broken)
    server = await aiohttp_server(app)
    config = parse_config(
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        "checks:\n"
        f'  - {{name: site, kind: http, url: "http://127.0.0.1:{server.port}/", interval: 30s,\n'
        "      slo: {target: 99%, window: 7d}}\n"
        "severity:\n"
        "  - {name: budget-fast, match: {burn_rate: fast}, severity: P1}\n"
        "  - {name: site-blips, match: {checks: [site]}, severity: ignore}\n",
        "monitors.yaml",
        {},
    )
    clock = FakeClock(T0)
    daemon = App(config, clock=clock, store=MemoryStore(), env={}, install_signals=False)
    running = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: daemon.ready, what="ready")

        async def burning() -> None:
            while not daemon.incidents.open_incidents:
                await clock.advance(30)
                await asyncio.sleep(0.02)

        await asyncio.wait_for(burning(), 30)
        [incident] = daemon.incidents.open_incidents
        assert (incident.key, incident.severity, incident.rule) == (
            "slo:check:site",
            Severity.P1,
            "budget-fast",
        )
        assert incident.failure == "slo_burn"
        async with ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.api_port}"
            async with http.get(f"{base}/api/assets/site/history") as answer:
                [slo] = (await answer.json())["slo"]
            async with http.get(f"{base}/metrics") as answer:
                exposition = await answer.text()
            async with http.get(f"{base}/assets/site") as answer:
                asset_page = await answer.text()
        assert (slo["name"], slo["scope"], slo["burning"]) == ("site", "check", "fast")
        # The asset page carries the same objective, burning fast.
        assert '<section class="slo" id="slo">' in asset_page
        assert "burning fast" in asset_page
        assert slo["error_budget_remaining"] < 0
        assert slo["burn_rate"]["5m"] == 100.0
        assert 'monitor_slo_burn_rate{scope="check",slo="site",window="1h"} 100.0' in exposition
        assert 'monitor_slo_target{scope="check",slo="site"} 0.99' in exposition
    finally:
        daemon.request_stop()
        await asyncio.wait_for(running, 15)


@settings(max_examples=300)
@example(adds=[(500 * 60, 1, 1), (100 * 60, 7, 7)], now=500 * 60, spans=[6 * 3600])  # too old
@example(adds=[(5, 1, 0), (400 * 60, 0, 1)], now=401 * 60, spans=[60, 120])  # a lap later
@given(
    adds=st.lists(
        st.tuples(st.integers(0, 800 * 60), st.integers(0, 5), st.integers(0, 5)), max_size=60
    ),
    now=st.integers(0, 900 * 60),
    spans=st.lists(st.integers(1, 20_000), min_size=1, max_size=4),
)
def test_the_ring_sums_what_a_naive_count_would(
    adds: list[tuple[int, int, int]], now: int, spans: list[int]
) -> None:
    ring = _Ring(60, 6 * 3600)
    for start, good, bad in adds:
        ring.add(start, good, bad)
    totals = ring.totals(now, spans)
    head = max([now // 60, *(s // 60 for s, _, _ in adds)])
    for span, total in zip(spans, totals, strict=True):
        kept = [
            (g, b) for s, g, b in adds
            if s // 60 > head - ring.n and s // 60 <= now // 60 and (s // 60) * 60 > now - span
        ]  # fmt: skip
        assert total == [sum(g for g, _ in kept), sum(b for _, b in kept)]


async def test_a_blind_spell_has_no_burn_and_pages_nobody(world) -> None:
    store, _, manager, evaluator = world
    evaluator.configure([objective()], RULES)
    await history(store, "web", range(31, 91), up=50, down=50)  # a bad hour...
    await history(store, "web", range(31), up=0, down=0, blind=5)  # ...then 31 m blind
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.burn["5m"], r.burn["30m"]) == (None, None)
    assert r.burn["1h"] == pytest.approx(50.0)
    assert r.burn["6h"] == pytest.approx(50.0)
    # No short window says the burn goes on: no page; the 3 d/6 h ticket stands.
    assert r.level == "slow"
    assert [i.severity for i in manager.open_incidents] == [Severity.P2]


async def test_a_store_that_cannot_answer_delays_an_objective(world) -> None:
    store, _, _, evaluator = world
    evaluator.configure([objective()])
    await history(store, "web", range(1, 61), up=99, down=1)
    real = store.read_history

    async def down(*_args: object) -> list[HistoryBucket]:
        raise StoreError("database is down")

    store.read_history = down
    await evaluator.evaluate()  # no exception past the evaluator
    assert evaluator.readings("web") == []
    store.read_history = real
    await evaluator.evaluate()
    [r] = evaluator.readings("web")
    assert (r.good, r.bad) == (60 * 99, 60)


async def test_a_slow_burn_that_turns_fast_raises_the_severity(world, clock) -> None:
    store, _, manager, evaluator = world
    evaluator.configure([objective(target=0.99)], RULES)
    await history(store, "web", range(1, 60 * 24 * 3), up=98, down=2)
    await evaluator.evaluate()
    [incident] = manager.open_incidents
    assert incident.severity is Severity.P2
    await clock.advance(10 * 60)
    # Ten minutes all down, as the history writer hands them over once stored.
    evaluator.stored([HistoryBucket("web", MINUTE, S0 + m * 60, down=100) for m in range(10)])
    await evaluator.evaluate()
    [incident] = manager.open_incidents
    assert incident.severity is Severity.P1
    assert "burns its error budget fast: 1h and 5m burn rates above 14.4x" in incident.message
    events = [e.event for e in await store.timeline(incident.id)]
    assert events[-2:] == ["failure", "severity_raised"]
