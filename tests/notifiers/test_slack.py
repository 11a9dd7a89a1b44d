"""Slack: the incoming webhook's plain-text answers, the message format, and the bot's
one thread per incident against a local fake of the Web API."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from monitor.core.model import Severity
from monitor.notifiers.base import NotificationEvent, NotifierError, Recipient
from monitor.notifiers.slack import slack_message
from tests.notifiers.conftest import Receiver, Seen
from tests.notifiers.samples import (
    ACKNOWLEDGE,
    BOT_TOKEN,
    HANDOFF,
    RESOLVE,
    TRIGGER,
    MemoryKV,
    make,
)

# --- the incoming webhook ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (400, "invalid_payload", False),
        (400, "user_not_found", False),
        (400, "no_text", False),
        (400, "invalid_blocks", False),
        (403, "action_prohibited", False),
        (404, "channel_not_found", False),
        (404, "no_service", False),
        (410, "channel_is_archived", False),
        (500, "rollup_error", True),
    ],
)
async def test_plain_text_errors(status, body, retryable, receiver: Receiver, session) -> None:
    receiver.answer(status, body)
    with pytest.raises(NotifierError) as info:
        await make("slack", receiver.base, session).send(TRIGGER)
    assert info.value.retryable is retryable
    assert str(info.value) == f"Slack (slack) answered {status}: {body}"


@pytest.mark.parametrize("body", ["", "<html>maintenance</html>", "not ok"])
async def test_only_ok_is_a_success(body: str, receiver: Receiver, session) -> None:
    receiver.answer(200, body)
    with pytest.raises(NotifierError) as info:
        await make("slack", receiver.base, session).send(TRIGGER)
    assert not info.value.retryable
    assert "not ok" in str(info.value)


async def test_ok_is_a_success(receiver: Receiver, session) -> None:
    receiver.answer(200, "ok")
    await make("slack", receiver.base, session).send(TRIGGER)
    assert receiver.seen[0].headers["Content-Type"].startswith("application/json")


def test_text_from_a_check_cannot_mention_or_link() -> None:
    n = replace(TRIGGER, text="got <!channel> & <https://evil.example|click>", title="a <b> & c")
    message = slack_message(n)
    assert message["text"] == (
        "[P0] a &lt;b&gt; &amp; c\ngot &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"
        "\n<@U012ABC> bob"
    )
    assert message["blocks"][0]["text"]["text"] == "[P0] a <b> & c"  # plain_text: as is
    details = message["attachments"][0]["blocks"][0]["text"]["text"]
    assert details == "got &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"


def test_link_labels_and_urls_cannot_break_out() -> None:
    n = replace(TRIGGER, runbook=None, links={"a|b>c": "https://x.example/p?a=1|2>3"})
    context = slack_message(n)["attachments"][0]["blocks"][-1]["elements"][0]["text"]
    assert context == "<https://x.example/p?a=1%7C2%3E3|a¦b&gt;c>"


@pytest.mark.parametrize(
    ("event", "severity", "colour"),
    [
        (NotificationEvent.TRIGGER, Severity.P0, "#d00000"),
        (NotificationEvent.TRIGGER, Severity.P1, "#ff8c00"),
        (NotificationEvent.TRIGGER, Severity.P2, "#f2c744"),
        (NotificationEvent.ACKNOWLEDGE, Severity.P1, "#ff8c00"),
        (NotificationEvent.RESOLVE, Severity.P0, "#2eb67d"),
        (NotificationEvent.TRIGGER, None, "#95a5a6"),
    ],
)
def test_colour_by_severity(event, severity, colour) -> None:
    message = slack_message(replace(TRIGGER, event=event, severity=severity))
    assert message["attachments"][0]["color"] == colour


def test_untriaged_says_so() -> None:
    fields = slack_message(replace(TRIGGER, severity=None))["attachments"][0]["blocks"][1]
    assert fields["fields"][0]["text"] == "*Severity*\nuntriaged"


def test_a_long_title_fits_the_header() -> None:
    message = slack_message(replace(TRIGGER, title="x" * 400))
    assert len(message["blocks"][0]["text"]["text"]) == 150


def test_drill_is_said_everywhere() -> None:
    message = slack_message(replace(TRIGGER, drill=True))
    assert message["text"].startswith("DRILL ")
    assert message["blocks"][0]["text"]["text"].startswith("DRILL ")
    context = message["attachments"][0]["blocks"][-1]["elements"][0]["text"]
    assert "DRILL" in context


# --- the bot: one thread per incident ---------------------------------------------------


class SlackApi:
    """A fake Slack Web API: every call answers ok with a new ts, or `errors[method]`."""

    def __init__(self, receiver: Receiver) -> None:
        self.errors: dict[str, str] = {}
        receiver.respond = self.respond
        self.receiver = receiver

    def respond(self, seen: Seen) -> web.Response:
        method = seen.path.rsplit("/", 1)[1]
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        ts = f"1700000000.{len(self.receiver.seen):06d}"
        return web.json_response({"ok": True, "channel": "C0123ALERT", "ts": ts})

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(s.path.rsplit("/", 1)[1], s.json()) for s in self.receiver.seen]


@pytest.fixture
def api(receiver: Receiver) -> SlackApi:
    return SlackApi(receiver)


async def test_one_thread_per_incident_across_restarts(api: SlackApi, session, kv) -> None:
    await make("slack_bot", api.receiver.base, session, kv).send(TRIGGER)
    assert json.loads(kv.data["slack_bot:slack_bot:7"]) == {
        "channel": "C0123ALERT",
        "ts": "1700000000.000001",
    }
    # A restart: a new notifier, the same store, the same thread.
    await make("slack_bot", api.receiver.base, session, kv).send(ACKNOWLEDGE)
    await make("slack_bot", api.receiver.base, session, kv).send(RESOLVE)
    shapes = [(m, b["channel"], b.get("ts"), b.get("thread_ts")) for m, b in api.calls()]
    assert shapes == [
        ("chat.postMessage", "#alerts", None, None),
        ("chat.update", "C0123ALERT", "1700000000.000001", None),
        ("chat.postMessage", "C0123ALERT", None, "1700000000.000001"),
        ("chat.update", "C0123ALERT", "1700000000.000001", None),
        ("chat.postMessage", "C0123ALERT", None, "1700000000.000001"),
    ]
    calls = api.calls()
    # The root shows the current state, without pinging anyone again.
    assert calls[3][1]["text"] == "[P0] Resolved: npm-winglang is down\nrecovered: 200 OK in 120 ms"
    assert calls[3][1]["attachments"][0]["color"] == "#2eb67d"
    assert all(s.headers["Authorization"] == f"Bearer {BOT_TOKEN}" for s in api.receiver.seen)
    assert all(
        s.headers["Content-Type"] == "application/json; charset=utf-8" for s in api.receiver.seen
    )


async def test_a_page_in_the_thread_mentions_the_people(api: SlackApi, session, kv) -> None:
    bot = make("slack_bot", api.receiver.base, session, kv)
    await bot.send(replace(TRIGGER, recipients=()))
    await bot.send(TRIGGER)
    (_, update), (_, reply) = api.calls()[1:]
    assert "<@U012ABC>" not in update["text"]
    assert reply["text"].endswith("<@U012ABC> bob")
    assert reply["thread_ts"] == "1700000000.000001"


async def test_messages_about_no_incident_are_not_threaded(api: SlackApi, session, kv) -> None:
    bot = make("slack_bot", api.receiver.base, session, kv)
    await bot.send(HANDOFF)
    await bot.send(HANDOFF)
    assert [m for m, _ in api.calls()] == ["chat.postMessage", "chat.postMessage"]
    assert all("thread_ts" not in b for _, b in api.calls())
    assert kv.data == {}


async def test_without_state_every_message_is_new(api: SlackApi, session) -> None:
    bot = make("slack_bot", api.receiver.base, session, None)
    await bot.send(TRIGGER)
    await bot.send(ACKNOWLEDGE)
    assert [m for m, _ in api.calls()] == ["chat.postMessage", "chat.postMessage"]


async def test_a_deleted_root_starts_a_new_thread(api: SlackApi, session, kv) -> None:
    bot = make("slack_bot", api.receiver.base, session, kv)
    await bot.send(TRIGGER)
    api.errors["chat.update"] = "message_not_found"
    await bot.send(ACKNOWLEDGE)
    assert [(m, b.get("thread_ts")) for m, b in api.calls()] == [
        ("chat.postMessage", None),
        ("chat.update", None),
        ("chat.postMessage", None),
    ]
    assert json.loads(kv.data["slack_bot:slack_bot:7"])["ts"] == "1700000000.000003"


async def test_a_bare_ts_in_the_store_is_understood(api: SlackApi, session, kv) -> None:
    kv.data["slack_bot:slack_bot:7"] = "1699999999.000001"
    await make("slack_bot", api.receiver.base, session, kv).send(ACKNOWLEDGE)
    assert [(m, b["channel"], b.get("ts") or b.get("thread_ts")) for m, b in api.calls()] == [
        ("chat.update", "#alerts", "1699999999.000001"),
        ("chat.postMessage", "#alerts", "1699999999.000001"),
    ]


async def test_a_store_that_fails_does_not_post_twice(api: SlackApi, session) -> None:
    class Broken(MemoryKV):
        async def kv_set(self, key: str, value: str) -> None:
            raise OSError("disk full")

    await make("slack_bot", api.receiver.base, session, Broken()).send(TRIGGER)  # no raise
    assert len(api.calls()) == 1


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ("ratelimited", True),
        ("internal_error", True),
        ("fatal_error", True),
        ("service_unavailable", True),
        ("request_timeout", True),
        ("invalid_auth", False),
        ("not_authed", False),
        ("token_revoked", False),
        ("missing_scope", False),
        ("channel_not_found", False),
        ("not_in_channel", False),
        ("is_archived", False),
        ("msg_too_long", False),
        ("some_new_error", False),
    ],
)
async def test_web_api_errors(api: SlackApi, session, error: str, retryable: bool) -> None:
    api.errors["chat.postMessage"] = error
    with pytest.raises(NotifierError) as info:
        await make("slack_bot", api.receiver.base, session).send(TRIGGER)
    assert info.value.retryable is retryable
    assert str(info.value) == f"Slack API (slack_bot) chat.postMessage: {error}"


async def test_an_update_error_other_than_a_lost_root_is_raised(api: SlackApi, session, kv) -> None:
    bot = make("slack_bot", api.receiver.base, session, kv)
    await bot.send(TRIGGER)
    api.errors["chat.update"] = "ratelimited"
    with pytest.raises(NotifierError) as info:
        await bot.send(ACKNOWLEDGE)
    assert info.value.retryable
    assert [m for m, _ in api.calls()] == ["chat.postMessage", "chat.update"]  # no reply yet


async def test_web_api_http_429(receiver: Receiver, session) -> None:
    receiver.answer(429, "", Retry_After="7")
    with pytest.raises(NotifierError) as info:
        await make("slack_bot", receiver.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (True, 7.0)


@pytest.mark.parametrize("body", ["<html>", "[1, 2]", '{"ok": "yes"}'])
async def test_web_api_odd_answers(receiver: Receiver, session, body: str) -> None:
    receiver.answer(200, body)
    with pytest.raises(NotifierError):
        await make("slack_bot", receiver.base, session).send(TRIGGER)


def test_bot_payload_names_the_channel() -> None:
    payload = make("slack_bot").build_payload(TRIGGER)
    assert payload["channel"] == "#alerts"
    assert {k: v for k, v in payload.items() if k != "channel"} == slack_message(TRIGGER)


def test_recipient_without_a_slack_id_is_named() -> None:
    n = replace(TRIGGER, recipients=(Recipient("carol"),))
    assert slack_message(n)["blocks"][1]["text"]["text"] == "carol"
