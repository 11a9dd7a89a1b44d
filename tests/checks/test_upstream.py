"""The shared JSON fetch: every way an API can answer badly becomes a classified failure."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiohttp import web

from monitor.checks.upstream import JsonReply, dig, fetch_json, parse_time, retry_after_s
from monitor.core.model import FailureKind, Observation


@pytest.fixture
async def base(aiohttp_server) -> str:
    async def login_redirect(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/login")

    async def login(_r: web.Request) -> web.Response:
        return web.Response(text="<html>Sign in</html>", content_type="text/html")

    async def limited(_r: web.Request) -> web.Response:
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"}
        return web.json_response(
            {"message": "API rate limit exceeded"}, status=403, headers=headers
        )

    async def secondary(_r: web.Request) -> web.Response:
        return web.json_response(
            {"message": "secondary rate limit"}, status=429, headers={"Retry-After": "60"}
        )

    async def forbidden(_r: web.Request) -> web.Response:
        return web.json_response({"message": "Bad credentials"}, status=401)

    async def teapot(_r: web.Request) -> web.Response:
        return web.Response(status=418)

    async def empty(_r: web.Request) -> web.Response:
        return web.Response(status=204)

    async def big(_r: web.Request) -> web.Response:
        return web.json_response({"x": "y" * 5000})

    async def trickle(request: web.Request) -> web.StreamResponse:
        # A large document arriving in pieces, as a real registry sends one.
        body = json.dumps({"versions": {str(i): "x" * 100 for i in range(2000)}}).encode()
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for start in range(0, len(body), 16384):
            await resp.write(body[start : start + 16384])
            await asyncio.sleep(0.005)  # the provocation: the client sees partial data
        await resp.write_eof()
        return resp

    app = web.Application()
    for path, handler in {
        "/private": login_redirect, "/login": login, "/limited": limited, "/secondary": secondary,
        "/forbidden": forbidden, "/teapot": teapot, "/empty": empty, "/big": big, "/trickle": trickle,
    }.items():  # fmt: skip
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    ("path", "failure", "message"),
    [
        (
            "/private",
            FailureKind.SCHEMA,
            "API answered 200 with text/html instead of JSON after a redirect to",
        ),
        ("/limited", FailureKind.RATE_LIMITED, "API rate limit reached (403 Forbidden)"),
        (
            "/secondary",
            FailureKind.RATE_LIMITED,
            "API rate limit reached (429 Too Many Requests); retry after 60s",
        ),
        ("/forbidden", FailureKind.AUTH, "API refused the credentials (401 Unauthorized)"),
        ("/teapot", FailureKind.PROTOCOL, "API answered 418 I'm a Teapot"),
    ],
)
async def test_bad_answers(session, base, path: str, failure: FailureKind, message: str) -> None:
    obs = await fetch_json(session, base + path, what="API")
    assert isinstance(obs, Observation)
    assert obs.failure is failure
    assert obs.message.startswith(message)


async def test_retry_after_is_kept(session, base) -> None:
    obs = await fetch_json(session, base + "/secondary", what="API")
    assert isinstance(obs, Observation)
    assert obs.details["retry_after_s"] == 60


async def test_body_arriving_in_pieces_is_read_whole(session, base) -> None:
    reply = await fetch_json(session, base + "/trickle", what="API")
    assert isinstance(reply, JsonReply), reply
    assert len(reply.doc["versions"]) == 2000


async def test_empty_body_is_a_reply(session, base) -> None:
    reply = await fetch_json(session, base + "/empty", what="API")
    assert isinstance(reply, JsonReply)
    assert (reply.status, reply.doc) == (204, None)


async def test_oversized_answer(session, base) -> None:
    obs = await fetch_json(session, base + "/big", what="API", max_bytes=1000)
    assert isinstance(obs, Observation)
    assert (obs.failure, obs.message) == (FailureKind.SCHEMA, "API answer larger than 1,000 bytes")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-03T00:59:00.066000+00:00", datetime(2026, 2, 3, 0, 59, 0, 66000, tzinfo=UTC)),
        ("2015-03-24T00:12:24.039Z", datetime(2015, 3, 24, 0, 12, 24, 39000, tzinfo=UTC)),
        ("2025-02-03T17:02:49Z", datetime(2025, 2, 3, 17, 2, 49, tzinfo=UTC)),
        ("2025-02-03T19:02:49+02:00", datetime(2025, 2, 3, 19, 2, 49, tzinfo=timezone(timedelta(hours=2)))),
        ("2025-02-03T17:02:49", datetime(2025, 2, 3, 17, 2, 49, tzinfo=UTC)),
        ("yesterday", None), ("", None), (None, None), (1700000000, None),
    ],
)  # fmt: skip
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_dig() -> None:
    doc = {"a": [{"b": 1, "c": True, "d": "x"}]}
    assert dig(doc, "a", 0, "b", kind=int) == 1
    assert dig(doc, "a", 0, "b", kind=float) == 1.0
    assert dig(doc, "a", 0, "c", kind=int) is None  # a bool is not a number here
    assert dig(doc, "a", 0, "d", kind=int) is None
    assert dig(doc, "a", 5, "b", kind=int) is None
    assert dig(doc, "a", "b", kind=int) is None
    assert dig("text", "a", kind=str) is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("60", 60.0), ("0", 0.0), ("soon", None), ("-1", None), (None, None)]
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_s({"Retry-After": value} if value is not None else {}) == seconds
