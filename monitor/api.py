"""The daemon's HTTP side door: `/metrics`, `/healthz`, `/readyz`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["ApiServer", "build_app"]


def build_app(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> web.Application:
    """The aiohttp application; kept apart from the server so tests can mount it."""

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class ApiServer:
    """Runs the app on host:port with aiohttp's AppRunner (no signal handling of its own)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self._host = host
        self._port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        for addr in self._runner.addresses:
            return int(addr[1])
        return self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
