"""Delivery edge cases: rate-limit hints, timeouts, echoed secrets, PagerDuty event mapping."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from monitor.model import Severity
from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import (
    NotificationEvent,
    NotifierError,
    Recipient,
    _retry_after,
    post_json,
)
from tests.notifiers.test_notifiers import CONFIGS, RESOLVE, TRIGGER, notifier


class Server:
    """Answers every POST with what the test sets; by default it echoes the request back."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body: str | None = None  # None: echo the path, query and body
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        self.requests.append((request.path, request.query_string, json.loads(raw)))
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self.body if self.body is not None else f"{request.path_qs} {raw}"
        return web.Response(status=self.status, text=text, headers=self.headers)


@pytest.fixture
async def server(aiohttp_server):
    s = Server()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    srv = await aiohttp_server(app)
    s.base = str(srv.make_url("")).rstrip("/")
    return s


TOKEN = "tok3n-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # a webhook token in the URL path


def secret_notifier(kind: str, base: str, session: Any) -> Any:
    raw = dict(CONFIGS[kind])
    if "url" in raw and kind != "pagerduty":
        raw["url"] = f"{base}/hooks/123456789012345678/{TOKEN}"
    else:
        raw["url"] = f"{base}/pd"
    if kind == "webhook":
        raw["headers"] = {"Authorization": "Bearer h3ader-token"}
    cls = NOTIFIERS[kind]
    return cls(kind, cls.Config.model_validate(raw), session)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_echoed_secrets_are_redacted(kind, server, session) -> None:
    server.status = 400  # the answer echoes the URL and the body, routing key included
    personal = replace(TRIGGER, recipients=(Recipient("bob", pagerduty="B0BSKEY"),))
    with pytest.raises(NotifierError) as info:
        await secret_notifier(kind, server.base, session).send(personal)
    message = str(info.value)
    assert not info.value.retryable
    assert "400" in message
    for secret in (TOKEN, "R0UTINGKEY", "B0BSKEY", "s3cret", "h3ader-token", server.base):
        assert secret not in message


async def test_discord_retry_after_in_the_json_body(server, session) -> None:
    server.status = 429
    server.body = json.dumps({"message": "You are being rate limited.", "retry_after": 64.57})
    with pytest.raises(NotifierError) as info:
        await notifier("discord", server.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (True, 64.57)


async def test_retry_after_header_wins_over_the_body(server, session) -> None:
    server.status, server.headers = 429, {"Retry-After": "65"}
    server.body = json.dumps({"retry_after": 64.57})
    with pytest.raises(NotifierError) as info:
        await notifier("discord", server.base, session).send(TRIGGER)
    assert info.value.retry_after_s == 65.0


async def test_unreadable_retry_after_is_still_retryable(server, session) -> None:
    server.status, server.headers, server.body = 429, {"Retry-After": "soon"}, "slow down"
    with pytest.raises(NotifierError) as info:
        await notifier("slack", server.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (True, None)


def test_retry_after_parsing() -> None:
    assert _retry_after("30") == 30.0
    assert _retry_after("-5") == 0.0
    assert _retry_after(None) is None
    assert _retry_after("not a date") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = _retry_after(later)
    assert seconds is not None
    assert 100 < seconds <= 120
    assert _retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0


async def test_timeout_is_retryable(server, session) -> None:
    server.delay = 1.0
    with pytest.raises(NotifierError) as info:
        await post_json(session, "Slack (x)", f"{server.base}/slow", {"a": 1}, timeout_s=0.1)
    assert info.value.retryable
    assert server.base not in str(info.value)


async def test_no_content_is_success(server, session) -> None:
    server.status, server.body = 204, ""
    await notifier("discord", server.base, session).send(TRIGGER)
    assert server.requests[0][1] == "wait=true"


async def test_pagerduty_personal_routing_key_on_the_wire(server, session) -> None:
    server.status, server.body = 202, '{"status":"success","message":"Event processed"}'
    pd = notifier("pagerduty", server.base, session)
    await pd.send(replace(TRIGGER, recipients=(Recipient("bob", pagerduty="B0BSKEY"),)))
    await pd.send(TRIGGER)
    await pd.send(RESOLVE)
    keys = [(body["routing_key"], body["event_action"]) for _, _, body in server.requests]
    assert keys == [("B0BSKEY", "trigger"), ("R0UTINGKEY", "trigger"), ("R0UTINGKEY", "resolve")]
    assert server.requests[2][2] == {
        "routing_key": "R0UTINGKEY",
        "event_action": "resolve",
        "dedup_key": "npm-winglang",
    }


@pytest.mark.parametrize(
    "event",
    [NotificationEvent.REASSIGN, NotificationEvent.HANDOFF, NotificationEvent.MONITOR_ALERT],
)
def test_pagerduty_other_events_are_their_own_alert(event) -> None:
    body = notifier("pagerduty").build_payload(replace(TRIGGER, event=event))
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == TRIGGER.idempotency_key


def test_pagerduty_acknowledge_follows_the_incident() -> None:
    body = notifier("pagerduty").build_payload(
        replace(RESOLVE, event=NotificationEvent.ACKNOWLEDGE)
    )
    assert body == {
        "routing_key": "R0UTINGKEY",
        "event_action": "acknowledge",
        "dedup_key": "npm-winglang",
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.P0, "critical"), (Severity.P1, "error"), (Severity.P2, "warning"), (None, "info")],
)
def test_pagerduty_severity(severity, expected) -> None:
    body = notifier("pagerduty").build_payload(replace(TRIGGER, severity=severity))
    assert body["payload"]["severity"] == expected


def test_pagerduty_summary_is_capped() -> None:
    body = notifier("pagerduty").build_payload(replace(TRIGGER, text="x" * 5000))
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["custom_details"]["text"] == "x" * 5000


@pytest.mark.parametrize(
    ("severity", "colour"),
    [(Severity.P0, "#d00000"), (Severity.P1, "#ff8c00"), (Severity.P2, "#f2c744")],
)
def test_slack_colours_and_drill(severity, colour) -> None:
    slack = notifier("slack")
    body = slack.build_payload(replace(TRIGGER, severity=severity, drill=True))
    assert body["attachments"][0]["color"] == colour
    assert body["text"].startswith("DRILL ")
    assert "<@U012ABC>" in body["text"]
    assert slack.build_payload(RESOLVE)["attachments"][0]["color"] == "#2eb67d"


def test_discord_colours_are_integers() -> None:
    discord = notifier("discord")
    assert discord.build_payload(TRIGGER)["embeds"][0]["color"] == 0xD00000
    assert discord.build_payload(RESOLVE)["embeds"][0]["color"] == 0x2EB67D
    drill = discord.build_payload(replace(TRIGGER, drill=True))
    assert drill["embeds"][0]["title"].startswith("DRILL ")


def test_registry_has_the_builtin_types() -> None:
    assert {"console", "webhook", "slack", "discord", "pagerduty"} <= set(NOTIFIERS)
    for kind, cls in NOTIFIERS.items():
        assert cls.Config.model_fields["type"].annotation.__args__ == (kind,)  # type: ignore[union-attr]
