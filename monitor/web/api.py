"""The daemon's HTTP side door: metrics, health, and the incident and silence API.

Reads are open (the server listens on 127.0.0.1 by default). Writes need
`Authorization: Bearer <api.token>`, compared in constant time; with no token
configured the write API is off. Every error is JSON: `{"error": "…"}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError

from monitor.core.clock import Clock
from monitor.core.configtypes import parse_duration
from monitor.core.errors import IncidentError
from monitor.core.model import Incident, IncidentStatus, Severity
from monitor.core.redact import redact, redact_text
from monitor.core.resources import nofile_limit
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.web.apischema import (
    MAX_BODY_BYTES,
    ROUTES,
    ActorBody,
    AssignBody,
    BodyTooDeep,
    CommentBody,
    DrillBody,
    PostmortemBody,
    ReportBody,
    ResolveBody,
    SeverityBody,
    SilenceBody,
    check_depth,
    openapi_document,
)
from monitor.web.errors import status_of
from monitor.web.status import StatusView, render_html

__all__ = ["ApiServer", "IncidentApi", "build_app", "to_json"]

log = structlog.stdlib.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def to_json(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": redact_text(message)}, status=status)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(redact(to_json(value))), status=status, content_type="application/json"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class IncidentApi:
    """What the incident routes need."""

    manager: IncidentManager
    silences: SilenceBook
    clock: Clock
    token: str | None  # None: the write API is off
    # The incident's runbook (its check's, else its rule's), shown with it.
    runbook_of: Callable[[Incident], str | None] = lambda _incident: None


def build_app(
    registry: CollectorRegistry | Metrics,
    is_ready: Callable[[], bool],
    incidents: IncidentApi | None = None,
    status: StatusView | None = None,
) -> web.Application:
    """The aiohttp application; kept apart from the server so tests can mount it."""

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

    document = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY_BYTES)
    app.on_response_prepare.append(_plain_headers)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/openapi.json", openapi)
    if incidents is not None:
        _add_incident_routes(app, incidents)
    if status is not None:
        _add_status_routes(app, status)
    return app


def _add_status_routes(app: web.Application, view: StatusView) -> None:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            text=render_html(redact(view.snapshot())),
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": _PAGE_CSP},
        )

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(redact(view.snapshot()), headers={"Cache-Control": "no-store"})

    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)


# The page has no script and loads nothing: say so, so a browser enforces it.
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


# Connections: a client has HEADER_TIMEOUT_S from connecting to finish its first request's
# headers, BODY_TIMEOUT_S for a body and IDLE_TIMEOUT_S between requests; at most
# MAX_CONNECTIONS at once (the idle ones give way to new ones), and never the descriptors
# the probes need (`monitor.core.resources.probe_reserve`).
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 15.0
LINGER_S = 1.0
MAX_CONNECTIONS = 256
MAX_ID = 2**63 - 1  # SQLite's INTEGER: a larger id names nothing
MAX_SILENCE = timedelta(days=366)
SILENCE_HORIZON = timedelta(days=366)  # how far ahead a silence may start


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as `{"error": …}` with its status; nothing escapes as a 500 page."""
    protocol = request.protocol
    if isinstance(protocol, _Protocol):
        protocol.request_started()
    try:
        return await handler(request)
    except IncidentError as exc:
        return _error(status_of(exc), str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, _reason(exc))
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api_request_failed", method=request.method, route=_route_of(request))
        return _error(500, "internal error; the monitor's log has the details")
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


class _BadRequest(Exception):
    """A client error found while reading the request: answered with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_Model = TypeVar("_Model", bound=BaseModel)


async def _body(request: web.Request, model: type[_Model]) -> _Model:
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read() if request.can_read_body else b""
    except TimeoutError:
        raise _BadRequest(f"the body did not arrive within {BODY_TIMEOUT_S:g}s", 408) from None
    if len(raw) > MAX_BODY_BYTES:
        raise _BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
    if not raw.strip():
        raw = b"{}"
    try:
        check_depth(raw)
        return model.model_validate_json(raw)
    except BodyTooDeep as exc:
        raise _BadRequest(str(exc)) from None
    except ValidationError as exc:
        raise _BadRequest(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """pydantic's findings, located by key and without the values sent."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "json_invalid":
            where, message = "body", "the body must be a JSON object"
        elif err["type"] == "model_type":
            message = "must be a JSON object"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _authorized(header: str, token: str) -> bool:
    """Constant-time comparison of `Bearer <token>`; any byte the header may hold is fine."""
    scheme, _, given = header.partition(" ")
    raw = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(raw, token.encode())


def _id(request: web.Request, what: str) -> int:
    text = request.match_info["id"]
    if not text.isascii() or not text.isdigit() or len(text) > 30:
        raise _BadRequest(f"{'an' if what == 'incident' else 'a'} {what} id is a number")
    number = int(text)
    if not 0 < number <= MAX_ID:
        raise _BadRequest(f"no {what} {number}", 404)
    return number


def _add_incident_routes(app: web.Application, api: IncidentApi) -> None:
    manager, book = api.manager, api.silences

    def write(
        model: type[_Model], handler: Callable[[web.Request, _Model], Awaitable[web.Response]]
    ) -> Handler:
        async def guarded(request: web.Request) -> web.Response:
            if api.token is None:
                return _error(403, "the write API is off: set api.token in the config")
            if not _authorized(request.headers.get("Authorization", ""), api.token):
                return _error(401, "missing or wrong bearer token")
            try:
                return await handler(request, await _body(request, model))
            except _BadRequest as exc:
                response = _error(exc.status, str(exc))
                if exc.status in (408, 413):
                    # The rest of that body is not worth waiting for (aiohttp would
                    # linger reading it): the connection ends with the answer.
                    response.force_close()
                return response

        return guarded

    def read(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _BadRequest as exc:
                return _error(exc.status, str(exc))

        return guarded

    def with_runbook(incident: Incident) -> dict[str, Any]:
        doc: dict[str, Any] = to_json(incident)
        doc["runbook"] = api.runbook_of(incident)
        return doc

    async def list_incidents(request: web.Request) -> web.Response:
        try:
            statuses = _enum_list(request.query.get("state"), IncidentStatus)
            severities = _enum_list(request.query.get("severity"), Severity)
            text = request.query.get("limit", "100").strip()
            if not text.isascii() or not text.isdigit() or len(text) > 6:
                raise ValueError("limit is a number from 1 to 1000")
            limit = int(text)
        except ValueError as exc:
            return _error(400, str(exc))
        found = await manager.store.list_incidents(
            statuses=statuses, severities=severities, limit=max(1, min(limit, 1000))
        )
        return _json({"incidents": [with_runbook(i) for i in found]})

    async def get_incident(request: web.Request) -> web.Response:
        number = _id(request, "incident")
        incident = await manager.store.get_incident(number)
        if incident is None:
            return _error(404, f"no incident {number}")
        timeline = await manager.store.timeline(number)
        return _json({"incident": with_runbook(incident), "timeline": timeline})

    async def report(_request: web.Request, body: ReportBody) -> web.Response:
        incident = await manager.report(
            body.title, body.actor, url=body.url, text=body.text, severity=body.severity
        )
        return _json({"incident": incident}, status=201)

    async def drill(_request: web.Request, body: DrillBody) -> web.Response:
        return _json({"incident": await manager.drill(body.severity, body.actor)}, status=201)

    async def ack(request: web.Request, body: ActorBody) -> web.Response:
        number = _id(request, "incident")
        return _json({"incident": await manager.acknowledge(number, body.actor)})

    async def resolve(request: web.Request, body: ResolveBody) -> web.Response:
        number = _id(request, "incident")
        return _json({"incident": await manager.resolve(number, body.actor, body.note)})

    async def assign(request: web.Request, body: AssignBody) -> web.Response:
        incident = await manager.assign(_id(request, "incident"), body.person, body.actor)
        return _json({"incident": incident})

    async def comment(request: web.Request, body: CommentBody) -> web.Response:
        incident = await manager.comment(_id(request, "incident"), body.text, body.actor)
        return _json({"incident": incident})

    async def postmortem(request: web.Request, body: PostmortemBody) -> web.Response:
        incident = await manager.link_postmortem(_id(request, "incident"), body.url, body.actor)
        return _json({"incident": incident})

    async def set_severity(request: web.Request, body: SeverityBody) -> web.Response:
        number = _id(request, "incident")
        return _json({"incident": await manager.set_severity(number, body.severity, body.actor)})

    async def list_silences(request: web.Request) -> web.Response:
        active = request.query.get("active") in ("1", "true", "yes")
        return _json({"silences": book.active() if active else book.all})

    async def create_silence(_request: web.Request, body: SilenceBody) -> web.Response:
        now = api.clock.now()
        starts, ends = _silence_window(body, now)
        matchers = body.matchers.model_dump()
        try:
            silence = await book.add(matchers, starts, ends, body.author, body.comment)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return _json({"silence": silence}, status=201)

    async def expire_silence(request: web.Request, _body: ActorBody) -> web.Response:
        number = _id(request, "silence")
        expired = await book.expire(number)
        return _json({"silence": expired}) if expired else _error(404, f"no silence {number}")

    handlers: dict[str, Callable[..., Awaitable[web.Response]]] = {
        "list_incidents": list_incidents, "get_incident": get_incident, "report": report,
        "drill": drill, "ack": ack, "resolve": resolve, "assign": assign, "comment": comment,
        "postmortem": postmortem, "set_severity": set_severity, "list_silences": list_silences,
        "create_silence": create_silence, "expire_silence": expire_silence,
    }  # fmt: skip
    for route in ROUTES:
        handler = handlers.get(route.operation)
        if handler is None:
            continue
        if route.write:
            app.router.add_route(route.method, route.path, write(route.body or ActorBody, handler))
        else:
            app.router.add_route(route.method, route.path, read(handler))


def _silence_window(body: SilenceBody, now: datetime) -> tuple[datetime, datetime]:
    """When the silence starts and ends, in UTC, bounded to what a silence can mean."""
    starts = _utc(body.starts_at, "starts_at") if body.starts_at else now
    if not now - SILENCE_HORIZON <= starts <= now + SILENCE_HORIZON:
        raise _BadRequest("starts_at must be within a year of now")
    if body.ends_at is not None:
        ends = _utc(body.ends_at, "ends_at")
    elif body.duration is not None:
        try:
            length = parse_duration(body.duration)
        except (ValueError, OverflowError):
            raise _BadRequest(
                "duration: use a number and a unit (ms, s, m, h, d, w), e.g. 2h or 1d"
            ) from None
        if length > MAX_SILENCE:
            raise _BadRequest("duration: a silence lasts at most 366 days")
        ends = starts + length
    else:
        raise _BadRequest("give ends_at (ISO time with a timezone) or duration (e.g. 2h)")
    if ends - starts > MAX_SILENCE:
        raise _BadRequest("a silence lasts at most 366 days")
    return starts, ends


def _utc(value: datetime, key: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _BadRequest(f"{key} is out of range") from None


def _enum_list(value: str | None, enum: type[Any]) -> list[Any] | None:
    if not value:
        return None
    try:
        return [enum(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown value; use {allowed}") from None


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
        response = _error(status, reason)
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
