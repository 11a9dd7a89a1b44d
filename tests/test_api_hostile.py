"""Hostile input to the API on a real server: every answer is JSON with a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.web.api import ApiServer, IncidentApi, build_app
from monitor.web.apischema import MAX_BODY_BYTES, ROUTES, render
from tests.fakes import FakeClock, MemoryStore
from tests.test_api import failing

TOKEN = "s3cret-token"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


class Api:
    def __init__(self, server: ApiServer, manager: IncidentManager) -> None:
        self.server, self.manager = server, manager

    async def raw(self, request: bytes) -> tuple[int, dict[str, Any]]:
        """Sends `request` as bytes; returns the status and the JSON body of the answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            writer.write(request)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        assert b"application/json" in head.lower(), data[:300]
        return status, json.loads(body)

    async def call(
        self, method: str, path: str, body: bytes | None = None, *, auth: str | None = TOKEN
    ) -> tuple[int, dict[str, Any]]:
        lines = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
        if auth:
            lines.append(f"Authorization: Bearer {auth}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return await self.raw(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[Api]:
    store = MemoryStore()
    manager = IncidentManager(store, clock, Metrics(CollectorRegistry()), cooldown=timedelta(0))
    await manager.load()
    book = SilenceBook(store, clock)
    await book.load()
    app = build_app(CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, TOKEN))
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    yield Api(server, manager)
    await server.stop()


WRITES = [r for r in ROUTES if r.write]


def concrete(path: str, number: int = 1) -> str:
    return path.replace("{id}", str(number))


@pytest.mark.parametrize("route", WRITES, ids=lambda r: f"{r.method} {r.path}")
async def test_deep_json_is_refused_on_every_write(api: Api, route: Any) -> None:
    for body in (b"[" * 200_000, b'{"a":' * 50_000, b'{"actor": ' + b"[" * 100 + b"]" * 100 + b"}"):
        status, doc = await api.call(route.method, concrete(route.path), body)
        assert status in (400, 413), doc
        assert doc["error"]


async def test_body_size_is_bounded(api: Api) -> None:
    body = json.dumps({"title": "x" * (MAX_BODY_BYTES + 10)}).encode()
    status, doc = await api.call("POST", "/api/incidents", body)
    assert status == 413
    assert doc == {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("GET", "/api/incidents/99999999999999999999999", None),
        ("GET", f"/api/incidents/{2**63}", None),
        ("POST", "/api/incidents/99999999999999999999999/ack", TOKEN),
        ("POST", f"/api/silences/{2**64}/expire", TOKEN),
        ("DELETE", "/api/silences/99999999999999999999999", TOKEN),
    ],
)
async def test_huge_ids_are_not_found(api: Api, method: str, path: str, auth: str | None) -> None:
    status, doc = await api.call(method, path, b"{}" if method != "GET" else None, auth=auth)
    assert status == 404
    assert doc["error"].startswith("no ")


async def test_odd_ids_are_bad_requests(api: Api) -> None:
    for path in ("/api/incidents/abc", "/api/incidents/%C2%B2", "/api/incidents/1" + "0" * 5000):
        status, doc = await api.call("GET", path, auth=None)
        assert status in (400, 404), (path[:40], doc)


@pytest.mark.parametrize(
    "fields",
    [
        {"duration": "99999999999999w"},
        {"duration": "9" * 400 + "s"},
        {"duration": "400d"},
        {"starts_at": "9999-12-31T23:59:59+00:00", "duration": "1d"},
        {"starts_at": "0001-01-01T00:00:00+14:00", "duration": "1h"},
        {"starts_at": "0001-01-01T00:00:00+14:00", "ends_at": "0001-01-02T00:00:00+14:00"},
        {"ends_at": "9999-12-31T23:59:59-14:00"},
        {"ends_at": "0001-01-01T00:00:00+14:00"},
        {"duration": 5},
        {"duration": "1h", "matchers": {"checks": "docs"}},
        {"duration": "1h", "extra": 1},
    ],
)
async def test_silences_out_of_range_are_bad_requests(api: Api, fields: dict[str, Any]) -> None:
    body = {"matchers": {"checks": ["docs"]}, "author": "a", "comment": "c", **fields}
    status, doc = await api.call("POST", "/api/silences", json.dumps(body).encode())
    assert status == 400, doc
    assert doc["error"]


async def test_latin1_bearer_is_unauthorized(api: Api) -> None:
    request = (
        b"POST /api/drills HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer S\xe9cret\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert await api.raw(request) == (401, {"error": "missing or wrong bearer token"})


async def test_answers_are_not_sniffed_or_cached(api: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port)
    writer.write(b"GET /api/incidents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = (await reader.read()).partition(b"\r\n\r\n")[0].lower()
    writer.close()
    assert b"x-content-type-options: nosniff" in head
    assert b"cache-control: no-store" in head


async def test_aiohttp_errors_are_json(api: Api) -> None:
    assert (await api.call("GET", "/nowhere"))[0] == 404
    assert (await api.call("PUT", "/api/incidents", b"{}"))[0] == 405
    status, doc = await api.raw(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert status == 400
    assert doc["error"].startswith("malformed HTTP request")
    status, _ = await api.raw(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (400, 414)
    status, _ = await api.raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
    assert status == 400


async def test_not_json_and_not_objects(api: Api) -> None:
    number = await failing(api.manager, FakeClock())
    for body in (b"not json", b"[]", b"5", b'"x"', b"\xff\xfe", b'{"actor": "\\ud800"}'):
        status, doc = await api.call("POST", f"/api/incidents/{number}/ack", body)
        assert status == 400, (body, doc)


async def test_a_crashing_handler_is_a_json_500(api: Api, monkeypatch) -> None:
    async def boom(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.manager.store, "list_incidents", boom)
    status, doc = await api.call("GET", "/api/incidents")
    assert status == 500
    assert doc == {"error": "internal error; the monitor's log has the details"}


class TestOpenApi:
    async def test_served_document_is_the_one_in_the_repository(self, api: Api) -> None:
        status, doc = await api.call("GET", "/api/openapi.json", auth=None)
        assert status == 200
        assert doc == json.loads(DOCS.read_text())
        assert DOCS.read_text() == render(), (
            "regenerate: python -m monitor.web.apischema > docs/openapi.json"
        )

    async def test_document_matches_the_routes(self, api: Api, clock: FakeClock) -> None:
        from monitor.web.status import StatusView

        store = MemoryStore()
        manager = IncidentManager(store, clock, Metrics(CollectorRegistry()), cooldown=timedelta(0))
        view = StatusView(
            title="t", clock=clock, checks=list, results=None, incidents=manager,  # type: ignore[arg-type]
        )  # fmt: skip
        from monitor.engine.history import HistoryView
        from monitor.web.badges import BadgeApi
        from monitor.web.history import HistoryApi

        history = HistoryApi(HistoryView(store, clock), lambda _name: True)
        app = build_app(
            CollectorRegistry(), lambda: True,
            IncidentApi(manager, SilenceBook(store, clock), clock, TOKEN), view, history=history,
            badges=BadgeApi(list, None, store, clock),  # type: ignore[arg-type]
        )  # fmt: skip
        served = {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None
        }
        documented = {
            (method.upper(), path)
            for path, ops in json.loads(DOCS.read_text())["paths"].items()
            for method in ops
        }
        assert served == documented
