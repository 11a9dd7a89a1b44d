"""The compact per-check series: what they record and the exposition text they write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.alertstate import AlertState
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.metrics.checkseries import CheckSeriesSet

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def result(outcome: Outcome, duration: float, **phases: float) -> CheckResult:
    failure = None if outcome is Outcome.UP else FailureKind.HTTP_STATUS
    return CheckResult('we"b\\site', "http", outcome, failure, "", T0, duration, attempts=2,
                       phases=phases)  # fmt: skip


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def filled() -> CheckSeriesSet:
    series = CheckSeriesSet()
    series.keep_phases("per_check")
    series.add("idle", "npm")
    series.record(result(Outcome.UP, 0.004, connect=0.0005, first_byte=0.002))
    series.record(result(Outcome.UP, 0.01, connect=0.003))
    series.record(result(Outcome.DOWN, 40.0))
    series.get('we"b\\site', "http").state = AlertState.DOWN
    series.skip('we"b\\site', "http", 3)
    return series


def test_what_the_text_says(filled: CheckSeriesSet) -> None:
    got = samples(filled.text())
    web = {("check", 'we"b\\site'), ("kind", "http")}

    def at(name: str, **labels: str) -> float:
        return got[(name, frozenset(web | set(labels.items())))]

    assert at("monitor_check_runs_total", outcome="up") == 2
    assert at("monitor_check_runs_total", outcome="down") == 1
    assert at("monitor_check_failures_total", failure="http_status") == 1
    assert at("monitor_check_attempts_total") == 6
    assert at("monitor_check_up") == 0
    assert at("monitor_check_last_success_timestamp_seconds") == T0.timestamp()
    assert at("monitor_check_alert_state", state="down") == 1
    assert at("monitor_check_alert_state", state="up") == 0
    # Buckets are cumulative, `le` inclusive: 0.004 ≤ 0.005, 0.01 ≤ 0.01, 40 only in +Inf.
    assert at("monitor_check_duration_seconds_bucket", le="0.005") == 1
    assert at("monitor_check_duration_seconds_bucket", le="0.01") == 2
    assert at("monitor_check_duration_seconds_bucket", le="30.0") == 2
    assert at("monitor_check_duration_seconds_bucket", le="+Inf") == 3
    assert at("monitor_check_duration_seconds_count") == 3
    assert at("monitor_check_duration_seconds_sum") == pytest.approx(40.014)
    phase = frozenset({("check", 'we"b\\site'), ("phase", "connect"), ("le", "0.001")})
    assert got[("monitor_http_phase_seconds_bucket", phase)] == 1
    connect = frozenset({("check", 'we"b\\site'), ("phase", "connect")})
    assert got[("monitor_http_phase_seconds_count", connect)] == 2
    assert got[("monitor_scheduler_skipped_ticks_total", frozenset({("check", 'we"b\\site')}))] == 3
    # A check that never ran: its counters and state are there, its up/last success not yet.
    idle = {("check", "idle"), ("kind", "npm")}
    assert got[("monitor_check_runs_total", frozenset(idle | {("outcome", "up")}))] == 0
    assert got[("monitor_check_alert_state", frozenset(idle | {("state", "unknown")}))] == 1
    assert ("monitor_check_up", frozenset(idle)) not in got


async def test_render_in_pieces_is_the_same_text(filled: CheckSeriesSet) -> None:
    for i in range(600):  # more than one piece per family
        filled.get(f"c{i}", "http").record(result(Outcome.UP, 0.2))
    pieces = [p async for p in filled.render()]
    assert len(pieces) > 10 * 2
    assert "".join(pieces) == filled.text()


def test_value_and_removal(filled: CheckSeriesSet) -> None:
    assert filled.value("monitor_scheduler_skipped_ticks_total", {"check": 'we"b\\site'}) == 3
    filled.remove('we"b\\site')
    assert filled.value("monitor_scheduler_skipped_ticks_total", {"check": 'we"b\\site'}) is None


def test_phase_histograms_off_keeps_runs_and_drops_phases(filled: CheckSeriesSet) -> None:
    assert "monitor_http_phase_seconds_bucket{" in filled.text()
    filled.keep_phases(False)  # as `daemon.phase_histograms: false` on a reload
    assert "monitor_http_phase_seconds_bucket{" not in filled.text()
    filled.record(result(Outcome.UP, 0.02, connect=0.001, first_byte=0.004))
    text = filled.text()
    assert "monitor_http_phase_seconds_bucket{" not in text
    got = samples(text)
    web = frozenset({("check", 'we"b\\site'), ("kind", "http"), ("outcome", "up")})
    assert got[("monitor_check_runs_total", web)] == 3
    filled.keep_phases(True)  # the old meaning: per check
    filled.record(result(Outcome.UP, 0.02, connect=0.001))
    phase = frozenset({("check", 'we"b\\site'), ("phase", "connect")})
    assert samples(filled.text())[("monitor_http_phase_seconds_count", phase)] == 1


def shapes(text: str) -> dict[str, set[frozenset[str]]]:
    """Each family's sample names with the label names they carry (without `le`)."""
    got: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            got.setdefault(s.name, set()).add(frozenset(s.labels) - {"le"})
    return got


CHECK = frozenset({"check", "kind"})
# What a dashboard needs, per check, whatever the setting.
LEAN = {
    "monitor_check_runs_total": {CHECK | {"outcome"}},
    "monitor_check_failures_total": {CHECK | {"failure"}},
    "monitor_check_up": {CHECK},
    "monitor_check_alert_state": {CHECK | {"state"}},
    "monitor_check_last_duration_seconds": {CHECK},
    "monitor_check_last_success_timestamp_seconds": {CHECK},
}
KIND = frozenset({"kind"})
PER_KIND = {
    "monitor_check_attempts_total": {KIND},
    "monitor_check_duration_seconds_bucket": {KIND},
    "monitor_check_duration_seconds_count": {KIND},
    "monitor_check_duration_seconds_sum": {KIND},
    "monitor_scheduler_skipped_ticks_total": {KIND},
}
PHASES_PER_KIND = {
    f"monitor_http_phase_seconds_{s}": {KIND | {"phase"}} for s in ("bucket", "count", "sum")
}
PER_CHECK = {
    "monitor_check_attempts_total": {CHECK},
    "monitor_check_duration_seconds_bucket": {CHECK},
    "monitor_check_duration_seconds_count": {CHECK},
    "monitor_check_duration_seconds_sum": {CHECK},
    "monitor_scheduler_skipped_ticks_total": {frozenset({"check"})},
    **{
        f"monitor_http_phase_seconds_{s}": {frozenset({"check", "phase"})}
        for s in ("bucket", "count", "sum")
    },
}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("per_kind", LEAN | PER_KIND | PHASES_PER_KIND),  # the default
        (False, LEAN | PER_KIND),
        ("per_check", LEAN | PER_CHECK),
        (True, LEAN | PER_CHECK),  # what `true` has always exported
    ],
)
def test_series_per_setting(setting: bool | str, expected: dict[str, set[frozenset[str]]]) -> None:
    series = CheckSeriesSet()
    series.keep_phases(setting)
    for name in ("a", "b"):
        series.add(name, "http")
        series.record(CheckResult(name, "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "", T0,
                                  0.2, phases={"connect": 0.01}))  # fmt: skip
        series.record(CheckResult(name, "http", Outcome.UP, None, "", T0, 0.1,
                                  phases={"connect": 0.01}))  # fmt: skip
        series.skip(name, "http", 1)
    assert shapes(series.text()) == expected


def test_default_is_a_handful_per_check_and_timings_per_kind() -> None:
    series = CheckSeriesSet()
    assert series.mode == "per_kind"
    for i in range(100):
        series.add(f"c{i}", "http")
        series.record(CheckResult(f"c{i}", "http", Outcome.UP, None, "", T0, 0.004 * (i + 1),
                                  attempts=1, phases={"connect": 0.0005, "first_byte": 0.002}))  # fmt: skip
    got = samples(series.text())
    per_check = [k for k in got if ("check", "c7") in k[1]]
    assert (
        len(per_check) == 3 + 1 + 5 + 1 + 1
    )  # runs by outcome, up, states, last duration and success
    assert got[
        ("monitor_check_last_duration_seconds", frozenset({("check", "c7"), ("kind", "http")}))
    ] == pytest.approx(0.032)
    http = frozenset({("kind", "http")})
    assert got[("monitor_check_attempts_total", http)] == 100
    assert got[("monitor_check_duration_seconds_count", http)] == 100
    assert got[("monitor_check_duration_seconds_bucket", http | {("le", "0.1")})] == 25
    connect = http | {("phase", "connect")}
    assert got[("monitor_http_phase_seconds_count", connect)] == 100
    assert got[("monitor_http_phase_seconds_bucket", connect | {("le", "0.001")})] == 100


def test_per_kind_timings_survive_a_mode_switch_and_a_removed_check() -> None:
    series = CheckSeriesSet()
    series.record(result(Outcome.UP, 0.01, connect=0.001))
    series.keep_phases("per_check")
    series.record(result(Outcome.UP, 0.01, connect=0.001))
    series.keep_phases("per_kind")
    series.remove('we"b\\site')
    got = samples(series.text())
    assert got[("monitor_check_duration_seconds_count", frozenset({("kind", "http")}))] == 2
    connect = frozenset({("kind", "http"), ("phase", "connect")})
    assert got[("monitor_http_phase_seconds_count", connect)] == 2
    series.keep_phases(False)
    assert "monitor_http_phase_seconds_count{" not in series.text()
