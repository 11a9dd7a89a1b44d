"""What a check reports is bounded where the result is made, and hostile bodies are a
failure of the asset that says why, never a crashed check."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.checks import CheckContext
from monitor.checks.http.check import HttpCheck, HttpCheckConfig
from monitor.core import jsonbody
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.core.model import MAX_MESSAGE, CheckResult, FailureKind, Outcome
from tests.proc import Daemon

DEEP = "[" * 200_000 + "]" * 200_000


def http_check(session: aiohttp.ClientSession, url: str, **fields: Any) -> HttpCheck:
    config = HttpCheckConfig(name="t", kind="http", url=url, **fields).resolved(Defaults())
    return HttpCheck(config, CheckContext(session=session, clock=SystemClock()))


async def deep_json_server(aiohttp_server: Any) -> Any:
    async def deep(_request: web.Request) -> web.Response:
        return web.Response(text=DEEP, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", deep)
    return await aiohttp_server(app)


async def test_deeply_nested_json_is_a_content_failure_that_says_why(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    server = await deep_json_server(aiohttp_server)
    check = http_check(
        session, str(server.make_url("/")), expect={"json": [{"path": "a", "exists": True}]}
    )
    obs = await check.run()
    assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.CONTENT)
    assert obs.message == (
        "expected a JSON body, could not parse it: "
        "nested too deeply to read (about 1,000 levels at most)"
    )


async def test_deeply_nested_json_records_nothing(
    aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    server = await deep_json_server(aiohttp_server)
    obs = await http_check(session, str(server.make_url("/")), record={"json": "a"}).run()
    assert obs.outcome is Outcome.UP
    assert "recorded" not in obs.details


def test_json_nesting_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonbody.loads(DEEP)
    assert jsonbody.loads("[[1]]") == [[1]]


def test_a_result_message_is_cut_to_one_kib_with_an_ellipsis() -> None:
    made = datetime(2026, 1, 1, tzinfo=UTC)
    result = CheckResult(
        "c", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "R" * 60_000, made, 0.1
    )
    assert len(result.message) == MAX_MESSAGE == 1024
    assert result.message == "R" * 1023 + "…"
    short = CheckResult("c", "http", Outcome.UP, None, "200 OK", made, 0.1)
    assert short.message == "200 OK"


@pytest.mark.slow
async def test_a_60_kb_reason_phrase_is_bounded_on_every_surface(tmp_path: Path) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 " + b"R" * 60_000 + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = tmp_path / "m.yaml"
    config.write_text(
        "defaults: {interval: 200ms, timeout: 2s, failure_threshold: 1}\n"
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        f'checks:\n  - {{name: site, kind: http, url: "http://127.0.0.1:{port}/"}}\n'
    )
    d = await Daemon(config).start()
    try:
        down = await d.event("check_down", check="site")
        assert len(down["message"]) == MAX_MESSAGE
        assert down["message"].endswith("R…")
        bodies = {}
        opened = await d.event("incident_opened", check="site")
        async with aiohttp.ClientSession() as s:
            for path in (
                "/api/status",
                "/",
                "/api/incidents",
                f"/api/incidents/{opened['incident_id']}",
                "/metrics",
            ):
                async with s.get(f"http://127.0.0.1:{d.port}{path}") as r:
                    assert r.status == 200, path
                    bodies[path] = await r.text()
        assert "R" * 900 in bodies["/api/status"]
        assert "R" * 900 in bodies["/"]
        for path, body in bodies.items():
            assert "R" * 1024 not in body, path
        for line in d.events:
            assert "R" * 1024 not in json.dumps(line)
    finally:
        await d.kill()
        server.close()
        await server.wait_closed()
