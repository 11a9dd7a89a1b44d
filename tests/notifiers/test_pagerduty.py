"""PagerDuty Events API v2: exact bodies, severities, routing keys and dedup keys."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from monitor.core.model import Severity
from monitor.notifiers.base import NotificationEvent, NotifierError, Recipient
from monitor.notifiers.pagerduty import dedup_key
from tests.notifiers.conftest import Answer, Receiver
from tests.notifiers.samples import (
    ACKNOWLEDGE,
    ALICE,
    GOLDEN_DIR,
    HANDOFF,
    PERSONAL_KEY,
    RESOLVE,
    ROUTING_KEY,
    TRIGGER,
    make,
)

ACCEPTED = Answer(
    202, '{"status":"success","message":"Event processed","dedup_key":"npm-winglang"}'
)
BOB = Recipient("bob", pagerduty=PERSONAL_KEY)


@pytest.fixture
def pd(receiver: Receiver) -> Receiver:
    receiver.default = ACCEPTED
    return receiver


async def test_the_bodies_on_the_wire(pd: Receiver, session, kv) -> None:
    notifier = make("pagerduty", pd.base, session, kv)
    await notifier.send(TRIGGER)
    await notifier.send(ACKNOWLEDGE)
    await notifier.send(RESOLVE)
    assert [s.path for s in pd.seen] == ["/v2/enqueue"] * 3
    assert pd.seen[0].json() == json.loads((GOLDEN_DIR / "pagerduty-trigger.json").read_text())
    assert [s.json() for s in pd.seen[1:]] == [
        {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "npm-winglang"},
        {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "npm-winglang"},
    ]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.P0, "critical"),
        (Severity.P1, "error"),
        (Severity.P2, "warning"),
        (None, "warning"),
    ],
)
def test_severity(severity, expected) -> None:
    body = make("pagerduty").build_payload(replace(TRIGGER, severity=severity))
    assert body["payload"]["severity"] == expected


def test_summary_is_capped_at_1024() -> None:
    body = make("pagerduty").build_payload(replace(TRIGGER, text="x" * 5000))
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["summary"].endswith("x…")
    assert body["payload"]["custom_details"]["text"] == "x" * 5000


def test_drill_summary() -> None:
    body = make("pagerduty").build_payload(replace(TRIGGER, drill=True))
    assert body["payload"]["summary"].startswith("DRILL: [P0] npm-winglang is down: ")
    assert body["payload"]["custom_details"]["drill"] is True


def test_long_dedup_keys_are_hashed() -> None:
    n = replace(TRIGGER, dedup_key="k" * 300)
    key = dedup_key(n)
    assert len(key) <= 255
    assert key.startswith("sha256:")
    assert dedup_key(replace(TRIGGER, dedup_key="k" * 255)) == "k" * 255


@pytest.mark.parametrize("event", [NotificationEvent.REASSIGN, NotificationEvent.MONITOR_ALERT])
def test_other_events_trigger_on_the_incident(event) -> None:
    body = make("pagerduty").build_payload(replace(TRIGGER, event=event))
    assert (body["event_action"], body["dedup_key"]) == ("trigger", "npm-winglang")


def test_no_dedup_key_uses_the_idempotency_key() -> None:
    body = make("pagerduty").build_payload(replace(TRIGGER, dedup_key=None))
    assert body["dedup_key"] == TRIGGER.idempotency_key


async def test_handoffs_are_not_sent(pd: Receiver, session) -> None:
    await make("pagerduty", pd.base, session).send(HANDOFF)
    assert pd.seen == []


async def test_a_personal_key_is_followed_to_the_resolve(pd: Receiver, session, kv) -> None:
    await make("pagerduty", pd.base, session, kv).send(replace(TRIGGER, recipients=(ALICE,)))
    await make("pagerduty", pd.base, session, kv).send(replace(TRIGGER, recipients=(BOB,)))
    # A restart in between: the keys are in the store.
    await make("pagerduty", pd.base, session, kv).send(RESOLVE)
    sent = [(s.json()["event_action"], s.json()["routing_key"]) for s in pd.seen]
    assert sent == [
        ("trigger", ROUTING_KEY),
        ("trigger", PERSONAL_KEY),
        ("resolve", ROUTING_KEY),
        ("resolve", PERSONAL_KEY),
    ]
    assert json.loads(kv.data["pagerduty:pagerduty:7"]) == [ROUTING_KEY, PERSONAL_KEY]
    assert {s.json()["dedup_key"] for s in pd.seen} == {"npm-winglang"}


async def test_without_state_acknowledge_goes_to_the_known_keys(pd: Receiver, session) -> None:
    await make("pagerduty", pd.base, session).send(replace(ACKNOWLEDGE, recipients=(BOB,)))
    assert [s.json()["routing_key"] for s in pd.seen] == [ROUTING_KEY, PERSONAL_KEY]


async def test_a_failed_resolve_is_retried_whole(pd: Receiver, session, kv) -> None:
    notifier = make("pagerduty", pd.base, session, kv)
    await notifier.send(replace(TRIGGER, recipients=(BOB,)))
    pd.answer(202)
    pd.answer(500, "oops")
    with pytest.raises(NotifierError) as info:
        await notifier.send(RESOLVE)
    assert info.value.retryable
    await notifier.send(RESOLVE)  # a second resolve of a closed key is harmless
    assert [s.json()["routing_key"] for s in pd.seen[-2:]] == [ROUTING_KEY, PERSONAL_KEY]


async def test_invalid_event_is_permanent_with_the_reason(pd: Receiver, session) -> None:
    pd.answer(400, json.dumps({"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["'payload.summary' is missing or blank"]}))  # fmt: skip
    with pytest.raises(NotifierError) as info:
        await make("pagerduty", pd.base, session).send(replace(TRIGGER, recipients=(BOB,)))
    assert not info.value.retryable
    assert "Event object is invalid" in str(info.value)
    assert PERSONAL_KEY not in str(info.value)
    assert ROUTING_KEY not in str(info.value)
