"""A local HTTP server that records every request and answers as a test scripts it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.notifiers.samples import MemoryKV


@dataclass
class Seen:
    """One request the receiver got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    text: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Answers each request with the next of `script`, then with `default`. `respond`
    replaces both (a fake API); `hang` makes it never answer (timeouts)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self.respond: Callable[[Seen], web.Response] | None = None
        self.hang = False
        self.base = ""

    def answer(self, status: int = 200, text: str = "ok", **headers: str) -> None:
        self.script.append(
            Answer(status, text, {k.replace("_", "-"): v for k, v in headers.items()})
        )

    async def handle(self, request: web.Request) -> web.Response:
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers),
                    await request.read())  # fmt: skip
        self.seen.append(seen)
        if self.hang:
            await asyncio.Event().wait()
        if self.respond is not None:
            return self.respond(seen)
        a = self.script.pop(0) if self.script else self.default
        return web.Response(status=a.status, text=a.text, headers=a.headers)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    r = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", r.handle)
    server = await aiohttp_server(app)
    r.base = str(server.make_url("")).rstrip("/")
    return r


@pytest.fixture
def kv() -> MemoryKV:
    return MemoryKV()
