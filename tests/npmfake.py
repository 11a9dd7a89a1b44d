"""A local npm registry speaking the real wire format, built from captured documents."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "npm"


def load_doc(name: str, base: str) -> Any:
    """A fixture with `{NPM_REGISTRY}` replaced by the fake's base URL."""
    return json.loads((FIXTURES / name).read_text().replace("{NPM_REGISTRY}", base))


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class FakeRegistry:
    """Serves package documents at `/<name>` (scoped: `/@scope%2fname`) and tarballs.

    Like the registry reachable here, it answers the abbreviated Accept header with the
    full document unless `abbreviated` holds a document for that package.
    """

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.abbreviated: dict[str, Any] = {}
        self.tarballs: dict[str, bytes] = {}  # path → bytes
        self.status: dict[str, int] = {}  # raw path or "HEAD <path>" → forced status
        self.raw: dict[str, tuple[str, bytes]] = {}  # raw path → (content type, body)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path
        self.requests.append((request.method, raw_path, dict(request.headers)))
        forced = self.status.get(f"{request.method} {raw_path}", self.status.get(raw_path))
        if forced is not None:
            return web.json_response({"error": "forced"}, status=forced)
        if raw_path in self.raw:
            ctype, body = self.raw[raw_path]
            return web.Response(body=body, content_type=ctype)
        if raw_path in self.tarballs:
            data = self.tarballs[raw_path]
            if request.headers.get("Range") == "bytes=0-0":
                return web.Response(
                    body=data[:1], status=206, content_type="application/octet-stream"
                )
            return web.Response(body=data, content_type="application/octet-stream")
        name = raw_path.lstrip("/").replace("%2f", "/").replace("%2F", "/")
        corgi = "application/vnd.npm.install-v1+json" in request.headers.get("Accept", "")
        if corgi and name in self.abbreviated:
            return web.json_response(
                self.abbreviated[name], content_type="application/vnd.npm.install-v1+json"
            )
        if name in self.docs:
            return web.json_response(self.docs[name])
        return web.json_response({"error": "Not found"}, status=404)
