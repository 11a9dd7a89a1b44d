from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.state import step

T0 = datetime(2026, 11, 2, tzinfo=UTC)
U, G, D = Outcome.UP, Outcome.DEGRADED, Outcome.DOWN


def result(outcome: Outcome, i: int) -> CheckResult:
    failure = None if outcome is U else FailureKind.SLOW if outcome is G else FailureKind.CONNECT
    return CheckResult("c", "http", outcome, failure, "", T0 + timedelta(minutes=i), 0.1)


def run(outcomes: list[Outcome], fail_n: int = 2, ok_n: int = 2) -> list[AlertState]:
    state = CheckState()
    seen = []
    for i, outcome in enumerate(outcomes):
        state = step(state, result(outcome, i), fail_n, ok_n)
        seen.append(state.state)
    return seen


UNK, UP_, DEG, DOWN = AlertState.UNKNOWN, AlertState.UP, AlertState.DEGRADED, AlertState.DOWN


@pytest.mark.parametrize(
    ("outcomes", "fail_n", "ok_n", "expected"),
    [
        ([U], 2, 2, [UP_]),  # the first success is enough from unknown
        ([D, D], 2, 2, [UNK, DOWN]),
        ([U, D, U, D], 2, 2, [UP_, UP_, UP_, UP_]),  # isolated failures never go down
        ([U, D, D, D], 2, 2, [UP_, UP_, DOWN, DOWN]),
        ([U, D], 1, 1, [UP_, DOWN]),
        (
            [U, D, D, U, D, U, U],
            2,
            2,
            [UP_, UP_, DOWN, DOWN, DOWN, DOWN, UP_],
        ),  # flapping stays down
        ([U, G, G, U, U], 2, 2, [UP_, UP_, DEG, DEG, UP_]),  # slow twice: degraded
        ([U, G, D], 2, 2, [UP_, UP_, DEG]),  # a mix of soft and hard failures: degraded
        ([U, D, D, G, G], 2, 2, [UP_, UP_, DOWN, DOWN, DEG]),  # recovering but slow
        ([U, D, D, G, U, U], 2, 2, [UP_, UP_, DOWN, DOWN, DEG, UP_]),
        ([U, D, D, U, U, U], 3, 3, [UP_, UP_, UP_, UP_, UP_, UP_]),
        ([U, D, D, D, U, U, U], 3, 3, [UP_, UP_, UP_, DOWN, DOWN, DOWN, UP_]),
    ],
)
def test_thresholds(
    outcomes: list[Outcome], fail_n: int, ok_n: int, expected: list[AlertState]
) -> None:
    assert run(outcomes, fail_n, ok_n) == expected


def test_since_changes_only_on_transition() -> None:
    state = CheckState()
    stamps = []
    for i, outcome in enumerate([U, U, D, D, D, U, U]):
        state = step(state, result(outcome, i), 2, 2)
        stamps.append(state.since)
    assert stamps == [T0, T0, T0, T0 + timedelta(minutes=3), T0 + timedelta(minutes=3),
                      T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)]  # fmt: skip
