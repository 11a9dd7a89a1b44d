"""Every HTTP notifier against a real local server: success, and how each answer is
classified (`http_error`), with no URL, token or key in any message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import aiohttp
import pytest

from monitor.notifiers.base import NotifierError, http_error, post, redact, retry_after_s
from tests.notifiers.conftest import Answer, Receiver
from tests.notifiers.samples import SECRETS, TRIGGER, make

HTTP_TYPES = ("discord", "pagerduty", "slack", "slack_bot", "webhook")
SUCCESS = {
    "discord": Answer(200, json.dumps({"id": "1172", "channel_id": "9001", "content": ""})),
    "pagerduty": Answer(202, '{"status":"success","message":"Event processed","dedup_key":"npm-winglang"}'),
    "slack": Answer(200, "ok"),
    "slack_bot": Answer(200, json.dumps({"ok": True, "channel": "C0123ALERT", "ts": "1700000000.000100"})),
    "webhook": Answer(204, ""),
}  # fmt: skip


def assert_no_secrets(message: str, r: Receiver) -> None:
    for secret in (*SECRETS, r.base):
        assert secret not in message


@pytest.mark.parametrize("kind", HTTP_TYPES)
async def test_success_posts_the_payload(kind: str, receiver: Receiver, session) -> None:
    receiver.default = SUCCESS[kind]
    notifier = make(kind, receiver.base, session)
    await notifier.send(TRIGGER)
    [seen] = receiver.seen
    assert seen.method == "POST"
    assert seen.json() == notifier.build_payload(TRIGGER)


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "wait"),
    [
        (429, {"Retry-After": "30"}, True, 30.0),
        (429, {"Retry-After": "Sun, 22 Nov 2026 12:02:00 GMT", "Date": "Sun, 22 Nov 2026 12:00:00 GMT"}, True, 120.0),
        (429, {}, True, None),
        (500, {}, True, None),
        (502, {}, True, None),
        (503, {"Retry-After": "5"}, True, None),
        (400, {}, False, None),
        (401, {}, False, None),
        (403, {}, False, None),
        (404, {}, False, None),
        (410, {}, False, None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("kind", HTTP_TYPES)
async def test_answers_are_classified(
    kind: str, status: int, headers: dict[str, str], retryable: bool, wait: float | None,
    receiver: Receiver, session,
) -> None:  # fmt: skip
    receiver.default = Answer(status, "error_word", headers)
    with pytest.raises(NotifierError) as info:
        await make(kind, receiver.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (retryable, wait)
    assert f"answered {status}: error_word" in str(info.value)
    assert_no_secrets(str(info.value), receiver)


@pytest.mark.parametrize("kind", HTTP_TYPES)
async def test_secrets_a_server_echoes_are_redacted(kind: str, receiver: Receiver, session) -> None:
    receiver.respond = lambda seen: aiohttp.web.Response(
        status=400, text=f"bad request to {seen.path}?{seen.query} {seen.headers} {seen.body!r}"
    )
    with pytest.raises(NotifierError) as info:
        await make(kind, receiver.base, session).send(TRIGGER)
    assert not info.value.retryable
    assert "<redacted>" in str(info.value) or kind in ("pagerduty", "webhook")
    assert_no_secrets(str(info.value), receiver)


@pytest.mark.parametrize("kind", HTTP_TYPES)
async def test_unreachable_is_retryable(kind: str, session) -> None:
    with pytest.raises(NotifierError) as info:
        await make(kind, "http://127.0.0.1:9", session).send(TRIGGER)
    assert info.value.retryable
    assert "unreachable" in str(info.value)
    for secret in SECRETS:
        assert secret not in str(info.value)


async def test_no_answer_in_time_is_retryable(receiver: Receiver, session) -> None:
    receiver.hang = True
    with pytest.raises(NotifierError) as info:
        await post(session, "Slack (x)", f"{receiver.base}/hook/T0K3N0000000000000000",
                   json_body={"text": "hi"}, timeout_s=0.05)  # fmt: skip
    assert info.value.retryable
    assert str(info.value) == "Slack (x): no answer within 0.05s"


async def test_post_returns_the_answer_text(receiver: Receiver, session) -> None:
    receiver.answer(200, "ok")
    assert await post(session, "x", f"{receiver.base}/a", data=b"raw") == "ok"
    assert receiver.seen[0].body == b"raw"


class TestHttpError:
    def test_2xx_is_no_error(self) -> None:
        for status in (200, 201, 202, 204):
            assert http_error("x", status, {}, "") is None

    def test_discord_retry_after_in_the_body(self) -> None:
        body = json.dumps(
            {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}
        )
        error = http_error("Discord (d)", 429, {}, body)
        assert error is not None
        assert (error.retryable, error.retry_after_s) == (True, 64.57)

    def test_the_header_wins_over_the_body(self) -> None:
        error = http_error("d", 429, {"Retry-After": "65"}, json.dumps({"retry_after": 64.57}))
        assert error is not None
        assert error.retry_after_s == 65.0

    def test_unreadable_retry_after_is_still_retryable(self) -> None:
        error = http_error("s", 429, {"Retry-After": "soon"}, "slow down")
        assert error is not None
        assert (error.retryable, error.retry_after_s) == (True, None)

    def test_the_error_text_is_short_and_on_one_line(self) -> None:
        error = http_error("s", 400, {}, "invalid_payload\n\n" + "x" * 1000)
        assert error is not None
        assert str(error).startswith("s answered 400: invalid_payload xxx")
        assert len(str(error)) < 350

    def test_an_empty_body(self) -> None:
        assert str(http_error("s", 404, {}, "")) == "s answered 404"


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30.0
    assert retry_after_s("1.5", now) == 1.5
    assert retry_after_s("-5", now) is None  # delay-seconds is never negative
    assert retry_after_s(None, now) is None
    assert retry_after_s("", now) is None
    assert retry_after_s("not a date", now) is None
    assert retry_after_s("Sun, 22 Nov 2026 12:01:30 GMT", now) == 90.0
    assert retry_after_s("Mon, 01 Jan 2001 00:00:00 GMT", now) == 0.0  # in the past: now


def test_redact() -> None:
    url = "https://discord.com/api/webhooks/223456789012345678/dIsCoRdToKeN-0123456789abcdef"
    text = f"POST {url} failed; token dIsCoRdToKeN-0123456789abcdef; key R0UTINGKEY; ok"
    assert redact(text, [url, "R0UTINGKEY", "ab"]) == (
        "POST <redacted> failed; token <redacted>; key <redacted>; ok"
    )
    assert (
        redact("https://h.example/x?token=abcdefgh123", ["https://h.example/x?token=abcdefgh123"])
        == "<redacted>"
    )
    assert (
        redact("see ?token=abcdefgh123", ["https://h.example/x?token=abcdefgh123"])
        == "see ?token=<redacted>"
    )
