"""The generic webhook: schema 1, the signature, the idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

from monitor.notifiers.base import NotificationEvent
from monitor.notifiers.webhook import SCHEMA_VERSION, sign
from tests.notifiers.conftest import Receiver
from tests.notifiers.samples import CASES, HEADER_TOKEN, TRIGGER, WEBHOOK_SECRET, make


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does, as the README shows it."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


async def test_signed_with_an_idempotency_key(receiver: Receiver, session) -> None:
    await make("webhook", receiver.base, session).send(TRIGGER)
    [seen] = receiver.seen
    assert seen.path == "/hooks/monitor"
    assert seen.headers["Idempotency-Key"] == TRIGGER.idempotency_key
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Authorization"] == HEADER_TOKEN
    assert seen.headers["X-Team"] == "wing"
    assert verify(WEBHOOK_SECRET, seen.body, seen.headers["X-Monitor-Signature"])
    assert not verify("another secret", seen.body, seen.headers["X-Monitor-Signature"])
    assert not verify(WEBHOOK_SECRET, seen.body + b" ", seen.headers["X-Monitor-Signature"])
    assert seen.json() == make("webhook").build_payload(TRIGGER)


async def test_without_a_secret_no_signature(receiver: Receiver, session) -> None:
    await make("webhook", receiver.base, session, secret=None).send(TRIGGER)
    assert "X-Monitor-Signature" not in receiver.seen[0].headers
    assert receiver.seen[0].headers["Idempotency-Key"] == TRIGGER.idempotency_key


async def test_configured_headers_cannot_override_ours(receiver: Receiver, session) -> None:
    headers = {"Idempotency-Key": "mine", "Content-Type": "text/plain"}
    await make("webhook", receiver.base, session, headers=headers).send(TRIGGER)
    seen = receiver.seen[0]
    assert (seen.headers["Idempotency-Key"], seen.headers["Content-Type"]) == (
        TRIGGER.idempotency_key,
        "application/json",
    )


async def test_non_ascii_text_is_signed_as_sent(receiver: Receiver, session) -> None:
    await make("webhook", receiver.base, session).send(replace(TRIGGER, text="ünïcode → ✓"))
    seen = receiver.seen[0]
    assert seen.json()["text"] == "ünïcode → ✓"
    assert verify(WEBHOOK_SECRET, seen.body, seen.headers["X-Monitor-Signature"])


def test_sign() -> None:
    assert sign("key", b"body") == (
        "sha256=" + hmac.new(b"key", b"body", hashlib.sha256).hexdigest()
    )


def test_schema_version_1() -> None:
    webhook = make("webhook")
    for n in CASES.values():
        doc = webhook.build_payload(n)
        assert doc["version"] == SCHEMA_VERSION == 1
        assert list(doc) == ["version", "event", "idempotency_key", "incident", "text", "recipients",
                             "runbook", "links", "actor", "drill", "created_at"]  # fmt: skip
        assert list(doc["incident"]) == ["id", "dedup_key", "title", "status", "severity", "check"]
        assert doc["event"] in {e.value for e in NotificationEvent}
        assert all(isinstance(r, str) for r in doc["recipients"])
        json.dumps(doc)
