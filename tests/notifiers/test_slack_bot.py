"""The Slack bot against a local fake of the Slack Web API: one thread per incident."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import NotificationEvent, NotifierError
from tests.fakes import MemoryStore
from tests.notifiers.test_notifiers import TRIGGER


class SlackApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.error: str | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(
            (request.match_info["method"], request.headers.get("Authorization", ""), body)
        )
        if self.error:
            return web.json_response({"ok": False, "error": self.error})
        return web.json_response(
            {"ok": True, "channel": "C123", "ts": f"1700000000.00{len(self.calls)}"}
        )


@pytest.fixture
async def api(aiohttp_server):
    fake = SlackApi()
    app = web.Application()
    app.router.add_post("/api/{method}", fake.handle)
    server = await aiohttp_server(app)
    fake.url = str(server.make_url("/api"))
    return fake


def bot(api: SlackApi, session, store: MemoryStore | None = None):
    cls = NOTIFIERS["slack_bot"]
    config = cls.Config.model_validate(
        {"type": "slack_bot", "token": "xoxb-secret", "channel": "C123", "api_url": api.url}
    )
    notifier = cls("bot", config, session)
    notifier.state = store or MemoryStore()
    return notifier


async def test_one_thread_per_incident(api, session) -> None:
    store = MemoryStore()
    await bot(api, session, store).send(TRIGGER)
    # A restart: a new notifier, the same store, the same thread.
    await bot(api, session, store).send(
        replace(TRIGGER, event=NotificationEvent.ACKNOWLEDGE, status="acknowledged", actor="alice")
    )
    methods = [(m, b.get("thread_ts"), b.get("ts")) for m, _, b in api.calls]
    assert methods == [
        ("chat.postMessage", None, None),
        ("chat.postMessage", "1700000000.001", None),
        ("chat.update", None, "1700000000.001"),
    ]
    assert all(auth == "Bearer xoxb-secret" for _, auth, _ in api.calls)
    assert api.calls[2][2]["text"].startswith("[P0] Acknowledged: npm-winglang is down")


@pytest.mark.parametrize(("error", "retryable"), [("ratelimited", True), ("internal_error", True),
                                                  ("invalid_auth", False), ("channel_not_found", False)])  # fmt: skip
async def test_errors(api, session, error: str, retryable: bool) -> None:
    api.error = error
    with pytest.raises(NotifierError) as info:
        await bot(api, session).send(TRIGGER)
    assert info.value.retryable is retryable
    assert error in str(info.value)
    assert "xoxb" not in str(info.value)


def test_payload_names_the_channel() -> None:
    cls = NOTIFIERS["slack_bot"]
    config = cls.Config.model_validate({"type": "slack_bot", "token": "t", "channel": "C9"})
    n = cls("bot", config, None)  # type: ignore[arg-type]  # building a payload needs no session
    payload = n.build_payload(TRIGGER)
    assert payload["channel"] == "C9"
    assert payload["text"].startswith("[P0] npm-winglang is down")
    json.dumps(payload)
