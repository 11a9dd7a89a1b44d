from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from monitor.core.alertstate import AlertState
from monitor.core.model import FailureKind, Severity
from monitor.incidents.rules import (
    RuleMatch,
    SeverityRule,
    Situation,
    TimeOfDay,
    Verdict,
    classify,
)

# 2026-11-23 is a Monday.
MON_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DOWN, DEGRADED = AlertState.DOWN, AlertState.DEGRADED
P0, P1, P2 = Severity.P0, Severity.P1, Severity.P2

# The Wing reference rules (targets.md §4.2), as README and monitors.yaml show them.
WING_YAML = """
severity:
  # P0: users cannot install Wing.
  - name: cannot-install
    match:
      kinds: [npm]
      failures: [not_found, tag_missing, tarball, integrity]
    severity: P0
    auto_resolve: false        # a P0 needs a person to confirm the fix
  - name: canary-failing
    match:
      checks: [canary]
      failures: [run_failed, failure_rate]
    severity: P0
  # P1: a major degradation that has a workaround.
  - name: main-build
    match:
      checks: [main-build]
      failures: [run_failed, failure_rate]
      states: [down]
    severity: P1
  - name: sites-down
    match:
      checks: [homepage, docs]
      states: [down]
    severity: P1
  # P2: minor, or only contributors notice.
  - name: pr-builds
    match:
      checks: [pr-builds]
    severity: P2
  - name: playground
    match:
      checks: [playground]     # slow (degraded) or down
    severity: P2
    raise_after:
      - {after: 2h, severity: P1}
  - name: stale-listings
    match:
      kinds: [vscode_marketplace, openvsx, version_sync]
      failures: [stale, version_skew, deprecated]
    severity: P2
  # GitHub's status page only explains other checks' failures.
  - name: upstream-status
    match:
      checks: [github-status]
    severity: ignore
"""

RULES = TypeAdapter(list[SeverityRule]).validate_python(yaml.safe_load(WING_YAML)["severity"])


def sit(
    check: str = "homepage",
    kind: str = "http",
    tags: tuple[str, ...] = (),
    failure: str | None = "http_status",
    state: AlertState = DOWN,
    failing_for: timedelta = timedelta(minutes=5),
    now: datetime = MON_NOON,
) -> Situation:
    return Situation(check, kind, frozenset(tags), failure, state, failing_for, now)


def rule(severity: str = "P1", **match: Any) -> SeverityRule:
    return SeverityRule.model_validate({"severity": severity, "match": match})


def matched(match: dict[str, Any], s: Situation) -> bool:
    return classify([rule("P0", **match)], s).rule == "severity[0]"


class TestMatchers:
    @pytest.mark.parametrize(
        ("match", "situation", "expected"),
        [
            ({}, sit(), True),  # an empty matcher matches every failing check
            ({"checks": ["homepage"]}, sit(), True),
            ({"checks": ["home*"]}, sit(), True),
            ({"checks": ["npm-*"]}, sit(check="npm-winglang"), True),
            ({"checks": ["npm-*"]}, sit(check="npm"), False),
            ({"checks": ["Homepage"]}, sit(), False),  # globs are case-sensitive
            ({"checks": ["docs", "homepage"]}, sit(), True),  # any value: OR
            ({"kinds": ["http"]}, sit(), True),
            ({"kinds": ["npm", "github_actions"]}, sit(), False),
            ({"tags": ["install"]}, sit(tags=("npm", "install")), True),
            ({"tags": ["install", "docs"]}, sit(tags=("docs",)), True),
            ({"tags": ["install"]}, sit(tags=("docs",)), False),
            ({"tags": ["install"]}, sit(tags=()), False),
            ({"failures": ["http_status"]}, sit(), True),
            ({"failures": ["tarball", "integrity"]}, sit(failure="integrity"), True),
            ({"failures": ["tarball"]}, sit(), False),
            ({"failures": ["tarball"]}, sit(failure=None), False),
            ({"states": ["down"]}, sit(), True),
            ({"states": ["down"]}, sit(state=DEGRADED), False),
            ({"states": ["down", "degraded"]}, sit(state=DEGRADED), True),
            ({"for": "10m"}, sit(failing_for=timedelta(minutes=10)), True),
            ({"for": "10m"}, sit(failing_for=timedelta(minutes=9, seconds=59)), False),
            ({"for": "0s"}, sit(failing_for=timedelta(0)), True),
            # AND: every field given must match.
            ({"checks": ["homepage"], "kinds": ["http"], "states": ["down"]}, sit(), True),
            ({"checks": ["homepage"], "kinds": ["npm"]}, sit(), False),
            ({"checks": ["docs"], "kinds": ["http"]}, sit(), False),
            ({"tags": ["docs"], "failures": ["slow"]}, sit(tags=("docs",), failure="slow"), True),
            ({"tags": ["docs"], "failures": ["slow"]}, sit(tags=("docs",)), False),
        ],
    )
    def test_fields(self, match: dict[str, Any], situation: Situation, expected: bool) -> None:
        assert matched(match, situation) is expected

    def test_for_may_be_written_by_field_name(self) -> None:
        assert RuleMatch(for_=timedelta(minutes=1)) == RuleMatch.model_validate({"for": "1m"})


def window(between: str, tz: str = "UTC", days: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"time": {"between": between, "timezone": tz, "days": list(days)}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class TestTimeOfDay:
    @pytest.mark.parametrize(
        ("time", "now", "expected"),
        [
            (window("09:00-17:00"), at("2026-11-23T09:00Z"), True),
            (window("09:00-17:00"), at("2026-11-23T16:59Z"), True),
            (window("09:00-17:00"), at("2026-11-23T17:00Z"), False),  # the end is excluded
            (window("09:00-17:00"), at("2026-11-23T08:59Z"), False),
            # Crossing midnight.
            (window("22:00-06:00"), at("2026-11-23T23:30Z"), True),
            (window("22:00-06:00"), at("2026-11-24T05:59Z"), True),
            (window("22:00-06:00"), at("2026-11-24T06:00Z"), False),
            (window("22:00-06:00"), at("2026-11-23T12:00Z"), False),
            (window("18:00-00:00"), at("2026-11-23T23:59Z"), True),
            (window("18:00-00:00"), at("2026-11-24T00:00Z"), False),
            # `days` names the day the span began: Friday night runs into Saturday.
            (window("22:00-06:00", days=("fri",)), at("2026-11-27T23:00Z"), True),
            (window("22:00-06:00", days=("fri",)), at("2026-11-28T05:00Z"), True),  # Sat
            (window("22:00-06:00", days=("fri",)), at("2026-11-28T23:00Z"), False),  # Sat
            (window("22:00-06:00", days=("fri",)), at("2026-11-27T05:00Z"), False),  # Thu's
            (window("09:00-17:00", days=("mon", "tue")), at("2026-11-24T10:00Z"), True),
            (window("09:00-17:00", days=("sat", "sun")), MON_NOON, False),
            # Local to the rule's time zone: 09:00-17:00 Berlin is 08:00-16:00 UTC in winter.
            (window("09:00-17:00", "Europe/Berlin"), at("2026-11-23T08:00Z"), True),
            (window("09:00-17:00", "Europe/Berlin"), at("2026-11-23T16:00Z"), False),
            # ... and 07:00-15:00 UTC in summer.
            (window("09:00-17:00", "Europe/Berlin"), at("2026-07-06T07:00Z"), True),
            (window("09:00-17:00", "Europe/Berlin"), at("2026-07-06T15:00Z"), False),
            # Monday 02:00 UTC is still Sunday evening in New York.
            (window("20:00-23:00", "America/New_York", ("sun",)), at("2026-11-23T02:00Z"), True),
            (window("20:00-23:00", "America/New_York", ("mon",)), at("2026-11-23T02:00Z"), False),
            # `now` in another offset is the same instant.
            (window("09:00-17:00"), at("2026-11-23T11:30+02:00"), True),
        ],
    )
    def test_window(self, time: dict[str, Any], now: datetime, expected: bool) -> None:
        assert matched(time, sit(now=now)) is expected

    def test_naive_now_is_utc(self) -> None:
        tod = TimeOfDay(between="09:00-17:00")
        assert tod.contains(datetime(2026, 11, 23, 9, 0))  # noqa: DTZ001  # the point of the test


class TestClassify:
    def test_first_match_wins(self) -> None:
        rules = [rule("P2", checks=["docs"]), rule("P0", kinds=["http"]), rule("P1")]
        assert classify(rules, sit()).severity is P0
        assert classify(rules, sit()).rule == "severity[1]"
        assert classify(rules, sit(check="docs")).severity is P2
        assert classify(rules, sit(kind="npm")).severity is P1

    def test_ignore_stops_the_search(self) -> None:
        rules = [rule("ignore", checks=["homepage"]), rule("P0")]
        assert classify(rules, sit()) == Verdict(
            None, "severity[0]", True, ("severity[0]: match → ignore",)
        )

    @pytest.mark.parametrize(
        ("state", "severity", "line"),
        [
            (DOWN, P2, "default: no rule matched; down → P2"),
            (DEGRADED, None, "default: no rule matched; degraded → ignore"),
        ],
    )
    def test_default(self, state: AlertState, severity: Severity | None, line: str) -> None:
        assert classify([], sit(state=state)) == Verdict(severity, "default", True, (line,))

    @pytest.mark.parametrize("state", [AlertState.UP, AlertState.UNKNOWN])
    def test_not_failing_is_never_classified(self, state: AlertState) -> None:
        verdict = classify([rule("P0")], sit(state=state))
        line = f"state '{state.value}': not failing, nothing to classify"
        assert verdict == Verdict(None, "default", True, (line,))

    @pytest.mark.parametrize(
        ("failing_for", "severity", "outcome"),
        [
            (timedelta(0), P2, "P2"),
            (timedelta(hours=1, minutes=59), P2, "P2"),
            (timedelta(hours=2), P1, "P2, raised to P1 after failing for 2h"),
            (timedelta(hours=5), P1, "P2, raised to P1 after failing for 2h"),
            (timedelta(hours=6), P0, "P2, raised to P0 after failing for 6h"),
            (timedelta(days=3), P0, "P2, raised to P0 after failing for 6h"),
        ],
    )
    def test_raise_after(self, failing_for: timedelta, severity: Severity, outcome: str) -> None:
        r = SeverityRule.model_validate(
            {
                "name": "slow-burn",
                "severity": "P2",
                "raise_after": [
                    {"after": "2h", "severity": "P1"},
                    {"after": "6h", "severity": "P0"},
                ],
            }
        )
        verdict = classify([r], sit(failing_for=failing_for))
        assert verdict.severity is severity
        assert verdict.trace == (f"severity[0] slow-burn: match → {outcome}",)

    def test_ignore_then_raise_is_a_grace_period(self) -> None:
        r = SeverityRule.model_validate(
            {"severity": "ignore", "raise_after": [{"after": "30m", "severity": "P2"}]}
        )
        assert classify([r], sit(failing_for=timedelta(minutes=29))).severity is None
        assert classify([r], sit(failing_for=timedelta(minutes=30))).severity is P2

    def test_auto_resolve_comes_from_the_rule(self) -> None:
        manual = SeverityRule.model_validate({"severity": "P1", "auto_resolve": False})
        verdict = classify([manual], sit())
        assert verdict.auto_resolve is False
        assert verdict.trace == ("severity[0]: match → P1 (resolved by hand)",)


class TestWingRules:
    @pytest.mark.parametrize(
        ("situation", "severity", "rule_name"),
        [
            (sit("npm-winglang", "npm", failure="tag_missing"), P0, "cannot-install"),
            (sit("npm-winglang-sdk", "npm", failure="integrity"), P0, "cannot-install"),
            (sit("npm-winglang", "npm", failure="unavailable"), P2, "default"),
            (sit("canary", "github_actions", failure="run_failed"), P0, "canary-failing"),
            (sit("canary", "github_actions", failure="stale", state=DEGRADED), None, "default"),
            (sit("main-build", "github_actions", failure="run_failed"), P1, "main-build"),
            (sit("homepage"), P1, "sites-down"),
            (sit("docs", failure="timeout"), P1, "sites-down"),
            (sit("docs", failure="tls_expiring", state=DEGRADED), None, "default"),
            (sit("pr-builds", "github_actions", failure="failure_rate"), P2, "pr-builds"),
            (sit("playground", failure="slow", state=DEGRADED), P2, "playground"),
            (
                sit("playground", failure="slow", state=DEGRADED, failing_for=timedelta(hours=3)),
                P1,
                "playground",
            ),
            (
                sit("vscode-extension", "vscode_marketplace", failure="stale", state=DEGRADED),
                P2,
                "stale-listings",
            ),
            (
                sit("github-status", "statuspage", failure="upstream_degraded"),
                None,
                "upstream-status",
            ),
        ],
    )
    def test_reference_table(
        self, situation: Situation, severity: Severity | None, rule_name: str
    ) -> None:
        verdict = classify(RULES, situation)
        assert (verdict.severity, verdict.rule) == (severity, rule_name)
        assert verdict.auto_resolve is (rule_name != "cannot-install")

    def test_explain_trace(self) -> None:
        verdict = classify(RULES, sit("docs", "http", ("docs", "user-facing")))
        assert verdict.trace == (
            "severity[0] cannot-install: no match: kind 'http' is not one of npm; "
            "failure 'http_status' is not one of not_found, tag_missing, tarball, integrity",
            "severity[1] canary-failing: no match: check 'docs' matches none of canary; "
            "failure 'http_status' is not one of run_failed, failure_rate",
            "severity[2] main-build: no match: check 'docs' matches none of main-build; "
            "failure 'http_status' is not one of run_failed, failure_rate",
            "severity[3] sites-down: match → P1",
        )

    def test_explain_trace_down_to_the_default(self) -> None:
        verdict = classify(RULES, sit("blog", state=DEGRADED, failure=None))
        assert verdict.trace == (
            "severity[0] cannot-install: no match: kind 'http' is not one of npm; "
            "no failure kind, wants one of not_found, tag_missing, tarball, integrity",
            "severity[1] canary-failing: no match: check 'blog' matches none of canary; "
            "no failure kind, wants one of run_failed, failure_rate",
            "severity[2] main-build: no match: check 'blog' matches none of main-build; "
            "no failure kind, wants one of run_failed, failure_rate; "
            "state 'degraded' is not one of down",
            "severity[3] sites-down: no match: check 'blog' matches none of homepage, docs; "
            "state 'degraded' is not one of down",
            "severity[4] pr-builds: no match: check 'blog' matches none of pr-builds",
            "severity[5] playground: no match: check 'blog' matches none of playground",
            "severity[6] stale-listings: no match: kind 'http' is not one of "
            "vscode_marketplace, openvsx, version_sync; "
            "no failure kind, wants one of stale, version_skew, deprecated",
            "severity[7] upstream-status: no match: check 'blog' matches none of github-status",
            "default: no rule matched; degraded → ignore",
        )


def test_trace_names_every_reason() -> None:
    r = SeverityRule.model_validate(
        {
            "severity": "P0",
            "match": {
                "tags": ["install"],
                "for": "15m",
                "time": {
                    "days": ["sat", "sun"],
                    "between": "09:00-17:00",
                    "timezone": "Europe/Berlin",
                },
            },
        }
    )
    verdict = classify([r], sit(tags=("docs", "user-facing")))
    assert verdict.trace == (
        "severity[0]: no match: tags docs, user-facing include none of install; "
        "failing for 5m, less than 15m; "
        "time mon 13:00 Europe/Berlin is outside sat, sun 09:00-17:00",
        "default: no rule matched; down → P2",
    )
    no_tags = classify([r], sit(failing_for=timedelta(hours=1), now=at("2026-11-28T10:00Z")))
    assert no_tags.trace[0] == "severity[0]: no match: no tags, wants one of install"


def errors(model: Any, data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return "\n".join(f"{e['loc']}: {e['msg']}" for e in info.value.errors())


class TestValidation:
    @pytest.mark.parametrize(
        ("model", "data", "message"),
        [
            (
                RuleMatch,
                {"failures": ["tarball", "http-status"]},
                "('failures', 1): Value error, unknown failure kind 'http-status'; "
                "did you mean 'http_status'? valid kinds: dns, connect,",
            ),
            (RuleMatch, {"failures": ["nope"]}, "unknown failure kind 'nope'; valid kinds: dns,"),
            (
                RuleMatch,
                {"states": ["up"]},
                "('states', 0): Input should be 'down', 'degraded' or 'blind'",
            ),
            (RuleMatch, {"for": "10"}, "invalid duration '10'"),
            (RuleMatch, {"check": ["x"]}, "('check',): Extra inputs are not permitted"),
            (
                TimeOfDay,
                {"between": "09:00-17:00", "timezone": "Europe/Berlinn"},
                "unknown time zone 'Europe/Berlinn': use an IANA name",
            ),
            (TimeOfDay, {"between": "09:00-17:00", "timezone": "Europe"}, "unknown time zone"),
            (TimeOfDay, {"between": "09:00-17:00", "timezone": "../etc"}, "unknown time zone"),
            (TimeOfDay, {"between": "9-17"}, "invalid time '9': use HH:MM"),
            (TimeOfDay, {"between": "09:00"}, "invalid span '09:00': use HH:MM-HH:MM"),
            (TimeOfDay, {"between": "09:00-24:00"}, "invalid time '24:00'"),
            (TimeOfDay, {"between": "09:60-10:00"}, "invalid time '09:60'"),
            (TimeOfDay, {"between": "09:00-09:00"}, "empty span '09:00-09:00'"),
            (TimeOfDay, {"between": "09:00-17:00", "days": ["monday"]}, "Input should be 'mon'"),
            (
                SeverityRule,
                {"severity": "P1", "raise_after": [{"after": "1h", "severity": "P2"}]},
                "raise_after[0]: P2 does not raise the rule's severity P1; "
                "raise_after may only make the severity worse (P0 is the worst)",
            ),
            (
                SeverityRule,
                {"severity": "P1", "raise_after": [{"after": "1h", "severity": "P1"}]},
                "raise_after[0]: P1 does not raise the rule's severity P1",
            ),
            (
                SeverityRule,
                {
                    "severity": "P2",
                    "raise_after": [
                        {"after": "1h", "severity": "P0"},
                        {"after": "2h", "severity": "P1"},
                    ],
                },
                "raise_after[1]: P1 does not raise the previous entry P0",
            ),
            (
                SeverityRule,
                {
                    "severity": "P2",
                    "raise_after": [
                        {"after": "2h", "severity": "P1"},
                        {"after": "1h", "severity": "P0"},
                    ],
                },
                "raise_after[1]: after 1h must be longer than the previous entry's 2h",
            ),
            (
                SeverityRule,
                {"severity": "P1", "raise_after": [{"after": "0s", "severity": "P0"}]},
                "('raise_after', 0, 'after'): Input should be greater than",
            ),
            (SeverityRule, {"severity": "P3"}, "Input should be 'P0', 'P1', 'P2' or 'ignore'"),
            (SeverityRule, {"severity": "P1", "name": ""}, "at least 1 character"),
        ],
    )
    def test_errors(self, model: Any, data: dict[str, Any], message: str) -> None:
        assert message in errors(model, data)

    def test_json_schema_lists_failure_kinds_and_uses_the_alias(self) -> None:
        schema = RuleMatch.model_json_schema()
        assert schema["properties"]["failures"]["items"]["enum"][:2] == ["dns", "connect"]
        assert "for" in schema["properties"]


_SITUATIONS = st.builds(
    Situation,
    check=st.one_of(st.sampled_from(["homepage", "docs", "canary", "npm-winglang"]), st.text()),
    kind=st.one_of(st.sampled_from(["http", "npm", "github_actions"]), st.text()),
    tags=st.frozensets(st.one_of(st.sampled_from(["install", "docs"]), st.text())),
    failure=st.one_of(st.none(), st.sampled_from(list(FailureKind)), st.text()),
    state=st.sampled_from(list(AlertState)),
    failing_for=st.timedeltas(),
    now=st.one_of(st.datetimes(timezones=st.timezones()), st.datetimes()),
)

_WITH_TIME = [
    *RULES[:3],
    SeverityRule.model_validate(
        {
            "severity": "ignore",
            "match": {"time": {"between": "22:00-06:00", "timezone": "Pacific/Kiritimati"}},
        }
    ),
    SeverityRule.model_validate(
        {
            "severity": "P2",
            "match": {"for": "1h", "time": {"between": "09:00-17:00", "days": ["mon"]}},
        }
    ),
    *RULES[3:],
]


@settings(max_examples=300, deadline=None)
@given(_SITUATIONS)
def test_classify_never_raises(s: Situation) -> None:
    verdict = classify(_WITH_TIME, s)
    assert verdict.trace
    assert (verdict.severity is None) or verdict.severity in Severity


def test_time_of_day_at_the_first_day_of_the_calendar() -> None:
    # Found by hypothesis: the morning part of a span that crosses midnight began
    # "yesterday", and 0001-01-01 has none.
    from monitor.incidents.rules import TimeOfDay

    tod = TimeOfDay.model_validate({"days": ["sun"], "between": "22:00-11:00"})
    assert (
        tod.contains(datetime(1, 1, 1, 10, 30, tzinfo=UTC)) is True
    )  # Monday morning: Sunday's span
