"""The daemon's HTTP side door: metrics, health, and the incident and silence API.

Reads are open (the server listens on 127.0.0.1 by default). Writes need
`Authorization: Bearer <api.token>`, compared in constant time; with no token
configured the write API is off. Every error is JSON: `{"error": "…"}`.

This module is the server: the app, its error middleware (a refused incident change
answers with the status `web.errors` maps its type to), and the connection limits. The
handlers live with their resource: `web.health`, `web.incidents`, `web.drills`,
`web.silences`, `web.badges` (shared request plumbing in `web.common`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server
from prometheus_client import CollectorRegistry

from monitor.core.errors import IncidentError
from monitor.core.resources import nofile_limit
from monitor.metrics.exporter import Metrics
from monitor.web import badges as badge_routes
from monitor.web import drills, health, incidents, silences
from monitor.web import history as asset_history
from monitor.web import status as status_page
from monitor.web.apischema import MAX_BODY_BYTES, ROUTES, ActorBody, openapi_document
from monitor.web.badges import BadgeApi
from monitor.web.common import Handler, IncidentApi, error, read, to_json, write
from monitor.web.errors import status_of
from monitor.web.history import HistoryApi
from monitor.web.status import StatusView

__all__ = ["ApiServer", "IncidentApi", "build_app", "to_json"]

log = structlog.stdlib.get_logger(__name__)


def build_app(
    registry: CollectorRegistry | Metrics,
    is_ready: Callable[[], bool],
    incidents: IncidentApi | None = None,
    status: StatusView | None = None,
    fleet: Callable[[], Mapping[str, object] | None] | None = None,
    history: HistoryApi | None = None,
    badges: BadgeApi | None = None,
) -> web.Application:
    """The aiohttp application; kept apart from the server so tests can mount it."""
    document = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(_plain_headers)
    for path, handler in health.routes(registry, is_ready, fleet).items():
        app.router.add_get(path, handler)
    app.router.add_get("/api/openapi.json", openapi)
    if incidents is not None:
        _add_api_routes(app, incidents)
    if status is not None:
        _add_status_routes(app, status)
    if history is not None:
        handler = asset_history.handlers(history)["asset_history"]
        app.router.add_get("/api/assets/{name}/history", read(handler))
    if badges is not None:
        served = badge_routes.handlers(badges)
        for route in ROUTES:  # in their order: a group's badges before a check's
            if route.operation in served:
                app.router.add_get(route.path, read(served[route.operation]))
    return app


def _add_api_routes(app: web.Application, api: IncidentApi) -> None:
    """Mounts each resource's handlers on its routes in `web.apischema.ROUTES`."""
    operations = {
        **incidents.handlers(api),
        **drills.handlers(api),
        **silences.handlers(api),
    }
    for route in ROUTES:
        handler = operations.get(route.operation)
        if handler is None:
            continue
        if route.write:
            app.router.add_route(
                route.method, route.path, write(api.token, route.body or ActorBody, handler)
            )
        else:
            app.router.add_route(route.method, route.path, read(handler))


def _add_status_routes(app: web.Application, view: StatusView) -> None:
    for path, handler in status_page.routes(view).items():
        app.router.add_get(path, handler)


# Connections: a client has HEADER_TIMEOUT_S from connecting to finish its first request's
# headers, BODY_TIMEOUT_S for a body and IDLE_TIMEOUT_S between requests; at most
# MAX_CONNECTIONS at once (the idle ones give way to new ones), and never the descriptors
# the probes need (`monitor.core.resources.probe_reserve`).
HEADER_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 15.0
LINGER_S = 1.0
MAX_CONNECTIONS = 256


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as `{"error": …}` with its status; nothing escapes as a 500 page."""
    protocol = request.protocol
    if isinstance(protocol, _Protocol):
        protocol.request_started()
    try:
        return await handler(request)
    except IncidentError as exc:
        return error(status_of(exc), str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error(exc.status, _reason(exc))
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api_request_failed", method=request.method, route=_route_of(request))
        return error(500, "internal error; the monitor's log has the details")
    finally:
        if isinstance(protocol, _Protocol):
            protocol.request_finished()


async def _plain_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Browsers take every answer as what it says it is, and nothing is cached on the way."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


def _reason(exc: web.HTTPException) -> str:
    if exc.status == 413:
        return f"the body is larger than {MAX_BODY_BYTES} bytes"
    return exc.reason


def _route_of(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "?"


class _Guard:
    """The API's share of the process: connections counted, the oldest idle one closed to
    make room for a new one, none accepted into the probes' descriptor reserve."""

    def __init__(self, max_connections: int, reserve: int) -> None:
        self.max_connections = max_connections
        self.reserve = reserve
        self.open: dict[_Protocol, None] = {}  # insertion order: oldest first
        self.refused = 0

    def admit(self, protocol: _Protocol, transport: asyncio.BaseTransport) -> bool:
        sock = transport.get_extra_info("socket")
        limit = nofile_limit()
        # At most half the limit is held back: a low limit must still leave the API room
        # for /healthz (the daemon raises its limit at start where it may).
        reserve = min(self.reserve, limit // 2) if limit is not None else 0
        if sock is not None and limit is not None and sock.fileno() >= limit - reserve:
            # Descriptors are handed out lowest first: this one's number says that fewer
            # than `reserve` are left, and those belong to the probes.
            return self._refuse("descriptor_reserve")
        if len(self.open) >= self.max_connections:
            idle = next((p for p in self.open if not p.busy), None)
            if idle is None:
                return self._refuse("max_connections")
            idle.close_idle()
        self.open[protocol] = None
        return True

    def _refuse(self, reason: str) -> bool:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("api_connection_refused", reason=reason, refused=self.refused,
                        open=len(self.open))  # fmt: skip
        return False

    def closed(self, protocol: _Protocol) -> None:
        self.open.pop(protocol, None)


class _Protocol(RequestHandler):
    """aiohttp's connection handler under the API's limits (see `_Guard`), answering what
    its own parser rejects (a malformed request line or header, a header too long) with a
    JSON error like every other."""

    def __init__(
        self, manager: Server, guard: _Guard, *, loop: asyncio.AbstractEventLoop,
        header_timeout_s: float, idle_timeout_s: float,
    ) -> None:  # fmt: skip
        # lingering_time: after an answer given before the body was read (408, 413), the
        # rest of the body is drained for at most a second, not aiohttp's ten.
        super().__init__(
            manager, loop=loop, keepalive_timeout=idle_timeout_s, lingering_time=LINGER_S
        )
        self._guard = guard
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self.busy = 0  # requests being handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(self, transport):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._header_timer = self._loop.call_later(self._header_timeout_s, self.close_idle)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._guard.closed(self)
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self.busy += 1
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def request_finished(self) -> None:
        self.busy -= 1

    def close_idle(self) -> None:
        """Closes the connection unless a request is being handled on it."""
        if not self.busy:
            self._guard.closed(self)
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("api_connection_failed", error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        reason = "internal error" if status >= 500 else "malformed HTTP request"
        if isinstance(exc, HttpProcessingError) and status < 500 and exc.message:
            reason = f"malformed HTTP request: {_first_line(exc.message)}"
        response = error(status, reason)
        response.force_close()
        return response


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""


class ApiServer:
    """Serves the app on host:port: aiohttp's AppRunner and request handler on a listening
    socket of our own (no signal handling of its own)."""

    def __init__(
        self, app: web.Application, host: str, port: int, *,
        max_connections: int = MAX_CONNECTIONS, reserve: int = 0,
        header_timeout_s: float = HEADER_TIMEOUT_S, idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self.guard = _Guard(max_connections, reserve)
        self._header_timeout_s, self._idle_timeout_s = header_timeout_s, idle_timeout_s

    async def start(self) -> None:
        await self._runner.setup()
        manager = self._runner.server
        if manager is None:
            raise RuntimeError("the API runner did not set up")
        loop = asyncio.get_running_loop()

        def protocol() -> _Protocol:
            return _Protocol(
                manager, self.guard, loop=loop, header_timeout_s=self._header_timeout_s,
                idle_timeout_s=self._idle_timeout_s,
            )  # fmt: skip

        self._server = await loop.create_server(
            protocol, self._host, self._port, reuse_address=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is not None:
            for sock in self._server.sockets:
                return int(sock.getsockname()[1])
        return self._port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
