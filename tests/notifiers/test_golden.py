"""`build_payload` of every built-in type against the golden files in
tests/fixtures/notifiers/ (`<type>-<case>.json`), reviewed against the wire formats in
the escalation research (§2.1 PagerDuty, §2.3 Slack, §2.4 Discord).

A payload that drifts fails here. After a deliberate change, rewrite them with
`UPDATE_GOLDEN=1 python3 -m pytest tests/notifiers/test_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from monitor.notifiers import NOTIFIERS
from tests.notifiers.samples import CASES, make
from tests.notifiers.samples import GOLDEN_DIR as GOLDEN

BUILTIN = ("console", "discord", "email", "pagerduty", "slack", "slack_bot", "webhook")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", BUILTIN)
def test_payload_matches_the_golden_file(kind: str, case: str) -> None:
    path = GOLDEN / f"{kind}-{case}.json"
    payload = make(kind).build_payload(CASES[case])
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert payload == json.loads(path.read_text())
    assert json.loads(json.dumps(payload)) == payload  # JSON through and through


@pytest.mark.parametrize("kind", BUILTIN)
def test_build_payload_is_pure(kind: str) -> None:
    notifier = make(kind)
    assert [notifier.build_payload(n) for n in CASES.values()] == [
        notifier.build_payload(n) for n in CASES.values()
    ]


def test_every_golden_file_is_used_and_every_type_has_them() -> None:
    assert set(BUILTIN) <= set(NOTIFIERS)
    expected = {f"{kind}-{case}.json" for kind in BUILTIN for case in CASES}
    assert {p.name for p in GOLDEN.glob("*.json")} == expected
