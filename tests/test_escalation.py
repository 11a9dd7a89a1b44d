"""Escalation stepping: pure, table-driven, with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.model import EscalationState
from monitor.paging.escalation import Policy, due_actions, freeze, thaw

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# The Wing process: post to #alert and page the primary at once, the secondary after
# 10 minutes unacknowledged, and repeat everything but the post up to 6 times.
WING = Policy.model_validate({
    "steps": [{"post": "slack-alert"}, {"page": "primary"}, {"wait": "10m"}, {"page": "secondary"}, {"wait": "10m"}],
    "repeat": 6, "repeat_from": 1,
})  # fmt: skip


def run_until(policy: Policy, minutes: int) -> list[tuple[float, str, object]]:
    """Every action of an unacknowledged incident up to `minutes`, as (minute, kind, target)."""
    state: EscalationState | None = EscalationState(1, freeze("wing", policy), 0, 0, T0)
    seen: list[tuple[float, str, object]] = []
    for tick in range(int(minutes) + 1):  # a scheduler waking every minute
        if state is None:
            break
        actions, state = due_actions(state, policy, T0 + timedelta(minutes=tick))
        seen += [((a.due_at - T0).total_seconds() / 60, a.kind, a.target) for a in actions]
    return seen


def test_the_wing_policy_pages_14_times_over_130_minutes():
    seen = run_until(WING, 300)
    assert seen[0] == (0.0, "post", "slack-alert")
    pages = [(minute, target) for minute, kind, target in seen if kind == "page"]
    assert pages == [(10.0 * i, "primary" if i % 2 == 0 else "secondary") for i in range(14)]
    assert [kind for _, kind, _ in seen].count("post") == 1


def test_due_times_come_from_the_plan_not_from_now():
    # The process was down from minute 1 to minute 25: what was due is done at once,
    # with its original due times (and so its original keys); what is not due waits.
    start = EscalationState(1, freeze("wing", WING), 0, 0, T0)
    _, after_first = due_actions(start, WING, T0)
    assert after_first is not None
    actions, state = due_actions(after_first, WING, T0 + timedelta(minutes=25))
    assert [(a.target, a.due_at, a.key) for a in actions] == [
        ("secondary", T0 + timedelta(minutes=10), "p0s3"),
        ("primary", T0 + timedelta(minutes=20), "p1s1"),
    ]
    assert state is not None
    assert state.next_at == T0 + timedelta(minutes=30)


def test_same_inputs_same_actions():
    state = EscalationState(1, freeze("wing", WING), 0, 0, T0)
    assert due_actions(state, WING, T0 + timedelta(minutes=15)) == due_actions(
        state, WING, T0 + timedelta(minutes=15)
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"steps": [{"page": "primary"}]}, [(0, "primary")]),
        (
            {"steps": [{"page": ["alice", "bob"]}, {"wait": "5m"}], "repeat": 2},
            [(0, ("alice", "bob")), (5, ("alice", "bob")), (10, ("alice", "bob"))],
        ),
        ({"steps": [{"wait": "5m"}, {"page": "rotation"}]}, [(5, "rotation")]),
    ],
)
def test_policies(policy, expected):
    seen = run_until(Policy.model_validate(policy), 60)
    assert [(m, t) for m, k, t in seen if k == "page"] == expected


def test_frozen_policy_round_trips():
    name, policy = thaw(freeze("wing", WING))
    assert (name, policy) == ("wing", WING)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"steps": [{"post": "x", "wait": "1m"}]}, "exactly one of post, page or wait"),
        ({"steps": [{}]}, "exactly one of post, page or wait (got none)"),
        ({"steps": [{"page": "boss"}]}, "Input should be 'primary', 'secondary' or 'rotation'"),
        ({"steps": [{"page": "primary"}], "repeat_from": 3}, "repeat_from 3 is past the last step"),
    ],
)
def test_validation(policy, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Policy.model_validate(policy)


def test_references_are_checked():
    from monitor.config.loader import parse_config
    from monitor.core.errors import ConfigError

    text = (
        "checks: []\n"
        "escalation:\n"
        "  channel: slack\n"
        "  severities: {P0: urgent}\n"
        "  policies:\n"
        "    urgent: {steps: [{post: slack}, {page: [bob]}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "m.yaml", {})
    assert [str(i) for i in info.value.issues] == [
        "m.yaml:3:12: escalation.channel: no notifier named 'slack'",
        "m.yaml:5:3: escalation.policies: a failure no rule matches is P2, which reaches no "
        "escalation policy (escalation.severities names no policy for it and there is no "
        "`default` policy): its incidents would page nobody",
        "m.yaml:6:29: escalation.policies.urgent.steps[0].post: no notifier named 'slack'",
        "m.yaml:6:45: escalation.policies.urgent.steps[1].page[0]: no person in oncall.people named 'bob'",
    ]


RULES = (
    "checks: []\n"
    "severity:\n"
    "  - {name: site-down, match: {checks: [site]}, severity: P1}\n"
    "  - {match: {checks: [docs]}, severity: P2, raise_after: [{after: 1h, severity: P1}]}\n"
    "  - {match: {checks: [blog]}, severity: P0}\n"
    "  - {match: {checks: [wiki]}, severity: ignore}\n"
)


def test_every_severity_the_rules_yield_reaches_a_policy():
    from monitor.config.loader import parse_config
    from monitor.core.errors import ConfigError

    text = RULES + (
        "escalation:\n"
        "  severities: {P0: urgent, P2: urgent}\n"
        "  policies:\n"
        "    urgent: {steps: [{page: primary}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "m.yaml", {})
    assert [str(i).split(", which")[0] for i in info.value.issues] == [
        "m.yaml:3:58: severity[0].severity: rule 'site-down' yields P1",
        "m.yaml:4:81: severity[1].raise_after[0].severity: severity[1] yields P1",
    ]
    assert "reaches no escalation policy" in str(info.value.issues[0])


@pytest.mark.parametrize(
    "escalation",
    [
        "escalation: {severities: {P0: urgent, P1: urgent, P2: urgent}, policies: {urgent: {steps: [{page: primary}]}}}\n",
        "escalation: {severities: {P0: urgent}, policies: {urgent: {steps: [{page: primary}]}, default: {steps: [{page: primary}]}}}\n",
        "escalation: {}\n",  # no paging set up at all: incidents are recorded, nobody paged
    ],
)
def test_severities_that_reach_a_policy_are_fine(escalation):
    from monitor.config.loader import parse_config

    parse_config(RULES + escalation, "m.yaml", {})
