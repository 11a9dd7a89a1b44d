"""`/metrics`, `/healthz`, `/readyz`: what Prometheus and a supervisor ask."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.metrics.exporter import Metrics
from monitor.web.common import Handler

__all__ = ["routes"]


def routes(
    registry: CollectorRegistry | Metrics, is_ready: Callable[[], bool]
) -> dict[str, Handler]:
    """The health routes, by path."""

    async def metrics(request: web.Request) -> web.StreamResponse:
        if isinstance(registry, CollectorRegistry):
            body = generate_latest(registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        # Streamed in pieces: with many checks the text is large, and writing it in one
        # go would hold the event loop (and the probes' schedule) for its whole length.
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        await response.prepare(request)
        async for part in registry.render():
            await response.write(part)
        await response.write_eof()
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    return {"/metrics": metrics, "/healthz": healthz, "/readyz": readyz}
