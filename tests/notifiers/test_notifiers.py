"""Notifier payloads against golden files, and delivery against real local servers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.model import Severity
from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import (
    Notification,
    NotificationEvent,
    Notifier,
    NotifierError,
    Recipient,
)

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "notifiers"
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

TRIGGER = Notification(
    idempotency_key="incident:7:1795000000:p0s1:pd:alice", event=NotificationEvent.TRIGGER,
    incident_id=7, dedup_key="npm-winglang", title="npm-winglang is down",
    text="winglang@0.85.49: tarball HEAD answered 404", severity=Severity.P0, status="triggered",
    check="npm-winglang", created_at=AT,
    recipients=(Recipient("alice", slack="U012ABC", discord="123456789012345678"),),
    runbook="https://example.org/runbooks/npm", links={"tarball": "https://registry.example/winglang.tgz"},
)  # fmt: skip
RESOLVE = Notification(
    idempotency_key="incident:7:resolved:1795003600:pd", event=NotificationEvent.RESOLVE, incident_id=7,
    dedup_key="npm-winglang", title="npm-winglang is down", text="resolved by alice", severity=Severity.P0,
    status="resolved", check="npm-winglang", created_at=AT, actor="alice",
)  # fmt: skip
CONFIGS: dict[str, dict[str, Any]] = {
    "slack": {"type": "slack", "url": "{base}/slack"},
    "pagerduty": {"type": "pagerduty", "routing_key": "R0UTINGKEY", "url": "{base}/pd"},
    "webhook": {"type": "webhook", "url": "{base}/hook", "secret": "s3cret"},
    "discord": {"type": "discord", "url": "{base}/discord"},
}


def notifier(kind: str, base: str = "http://127.0.0.1:9", session: Any = None) -> Notifier[Any]:
    raw = {k: v.format(base=base) if isinstance(v, str) else v for k, v in CONFIGS[kind].items()}
    cls = NOTIFIERS[kind]
    return cls(kind, cls.Config.model_validate(raw), session)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize(("name", "n"), [("trigger", TRIGGER), ("resolve", RESOLVE)])
def test_golden_payloads(kind: str, name: str, n: Notification) -> None:
    path = GOLDEN / f"{kind}-{name}.json"
    payload = notifier(kind).build_payload(n)
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert payload == json.loads(path.read_text())


def test_pagerduty_semantics() -> None:
    pd = notifier("pagerduty")
    trigger = pd.build_payload(TRIGGER)
    assert (trigger["event_action"], trigger["dedup_key"], trigger["payload"]["severity"]) == (
        "trigger",
        "npm-winglang",
        "critical",
    )
    assert pd.build_payload(RESOLVE)["event_action"] == "resolve"
    personal = replace(TRIGGER, recipients=(Recipient("bob", pagerduty="BOBKEY"),))
    assert pd.build_payload(personal)["routing_key"] == "BOBKEY"
    drill = pd.build_payload(replace(TRIGGER, drill=True))
    assert drill["payload"]["summary"].startswith("DRILL: ")


class Receiver:
    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.queries: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        self.queries.append(request.query_string)
        return web.Response(
            status=self.status,
            text="ok" if self.status < 300 else "invalid_payload",
            headers=self.headers,
        )


@pytest.fixture
async def receiver(aiohttp_server):
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    server = await aiohttp_server(app)
    r.base = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    return r


@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_send_success(kind: str, receiver, session) -> None:
    await notifier(kind, receiver.base, session).send(TRIGGER)
    _, _, body = receiver.requests[0]
    assert json.loads(body) == notifier(kind).build_payload(TRIGGER)


async def test_webhook_signature_and_idempotency_key(receiver, session) -> None:
    await notifier("webhook", receiver.base, session).send(TRIGGER)
    _, headers, body = receiver.requests[0]
    assert headers["Idempotency-Key"] == TRIGGER.idempotency_key
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Monitor-Signature"] == expected


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(429, {"Retry-After": "30"}, True, 30.0), (500, {}, True, None), (503, {}, True, None),
     (400, {}, False, None), (404, {}, False, None)],
)  # fmt: skip
@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_errors_are_classified_without_secrets(
    kind, status, headers, retryable, retry_after, receiver, session
) -> None:
    receiver.status, receiver.headers = status, headers
    with pytest.raises(NotifierError) as info:
        await notifier(kind, receiver.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (retryable, retry_after)
    assert str(status) in str(info.value)
    for secret in ("R0UTINGKEY", "s3cret", receiver.base):
        assert secret not in str(info.value)


async def test_unreachable_is_retryable(session) -> None:
    with pytest.raises(NotifierError) as info:
        await notifier("slack", "http://127.0.0.1:9", session).send(TRIGGER)
    assert info.value.retryable


def test_console(capsys) -> None:
    cls = NOTIFIERS["console"]
    import asyncio

    asyncio.run(cls("console", cls.Config.model_validate({"type": "console"}), None).send(TRIGGER))  # type: ignore[arg-type]  # console needs no session
    assert (
        capsys.readouterr().out
        == "[trigger] P0 npm-winglang is down: winglang@0.85.49: tarball HEAD answered 404 → alice\n"
    )


def test_plugins_from_entry_points(monkeypatch) -> None:
    class Good(Notifier[Any]):
        Config = NOTIFIERS["console"].Config

        def build_payload(self, n):
            return {}

        async def send(self, n):
            return None

    class EP:
        def __init__(self, name: str, target: object) -> None:
            self.name, self.value, self._target = name, f"pkg:{name}", target

        def load(self) -> object:
            if isinstance(self._target, Exception):
                raise self._target
            return self._target

    monkeypatch.setattr("monitor.notifiers.entry_points",
                        lambda group: [EP("good", Good), EP("broken", ImportError("no module")), EP("odd", object)])  # fmt: skip
    monkeypatch.setattr("monitor.notifiers.NOTIFIERS", dict(NOTIFIERS))
    from monitor import notifiers as registry

    assert registry.load_plugins() == ["good"]
    assert registry.NOTIFIERS["good"] is Good


async def test_discord_waits_for_the_message(receiver, session) -> None:
    await notifier("discord", receiver.base, session).send(TRIGGER)
    assert receiver.queries == ["wait=true"]
    payload = json.loads(receiver.requests[0][2])
    assert payload["allowed_mentions"] == {"parse": [], "users": ["123456789012345678"]}
    assert payload["content"] == "<@123456789012345678>"
