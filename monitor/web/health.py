"""`/metrics`, `/healthz`, `/readyz`: what Prometheus and a supervisor ask."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.metrics.exporter import Metrics
from monitor.web.common import Handler

__all__ = ["routes"]


def routes(
    registry: CollectorRegistry | Metrics,
    is_ready: Callable[[], bool],
    fleet: Callable[[], Mapping[str, object] | None] | None = None,
) -> dict[str, Handler]:
    """The health routes, by path. `fleet` adds the replicas' detail to `/readyz`."""

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
        ready = is_ready()
        body: dict[str, object] = {"status": "ready" if ready else "starting"}
        if fleet is not None and (detail := fleet()) is not None:
            body["fleet"] = dict(detail)
        return web.json_response(body, status=200 if ready else 503)

    return {"/metrics": metrics, "/healthz": healthz, "/readyz": readyz}
