"""The daemon's HTTP side door: metrics, health, and the incident and silence API.

Reads are open (the server listens on 127.0.0.1 by default). Writes need
`Authorization: Bearer <api.token>`, compared in constant time; with no token
configured the write API is off. Every error is JSON: `{"error": "…"}`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.clock import Clock
from monitor.configtypes import parse_duration
from monitor.incidents import IncidentError, IncidentManager
from monitor.metrics import Metrics
from monitor.model import Incident, IncidentStatus, Severity
from monitor.silences import SilenceBook
from monitor.status import StatusView, render_html

__all__ = ["ApiServer", "IncidentApi", "build_app", "to_json"]

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
    return web.json_response({"error": message}, status=status)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(to_json(value)), status=status, content_type="application/json"
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

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if incidents is not None:
        _add_incident_routes(app, incidents)
    if status is not None:
        _add_status_routes(app, status)
    return app


def _add_status_routes(app: web.Application, view: StatusView) -> None:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            text=render_html(view.snapshot()),
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": _PAGE_CSP},
        )

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(view.snapshot(), headers={"Cache-Control": "no-store"})

    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)


# The page has no script and loads nothing: say so, so a browser enforces it.
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IncidentError as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise


def _add_incident_routes(app: web.Application, api: IncidentApi) -> None:
    manager, book = api.manager, api.silences

    def write(handler: Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]) -> Handler:
        async def guarded(request: web.Request) -> web.Response:
            if api.token is None:
                return _error(403, "the write API is off: set api.token in the config")
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), api.token.encode()
            ):
                return _error(401, "missing or wrong bearer token")
            try:
                body = await request.json() if request.can_read_body else {}
            except ValueError:
                return _error(400, "the body must be JSON")
            if not isinstance(body, dict):
                return _error(400, "the body must be a JSON object")
            try:
                return await handler(request, body)
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))

        return guarded

    def with_runbook(incident: Incident) -> dict[str, Any]:
        doc: dict[str, Any] = to_json(incident)
        doc["runbook"] = api.runbook_of(incident)
        return doc

    def incident_id(request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise IncidentError("an incident id is a number", status=400) from None

    def actor(body: dict[str, Any]) -> str:
        value = body.get("actor", "api")
        if not isinstance(value, str) or not value.strip():
            raise ValueError("actor must be a non-empty string")
        return value.strip()

    def text(body: dict[str, Any], key: str, *, required: bool = True) -> str:
        value = body.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise ValueError(f"{key} must be a non-empty string")
        return value.strip()

    async def list_incidents(request: web.Request) -> web.Response:
        try:
            statuses = _enum_list(request.query.get("state"), IncidentStatus)
            severities = _enum_list(request.query.get("severity"), Severity)
            limit = int(request.query.get("limit", "100"))
        except ValueError as exc:
            return _error(400, str(exc))
        found = await manager.store.list_incidents(
            statuses=statuses, severities=severities, limit=max(1, min(limit, 1000))
        )
        return _json({"incidents": [with_runbook(i) for i in found]})

    async def get_incident(request: web.Request) -> web.Response:
        number = incident_id(request)
        incident = await manager.store.get_incident(number)
        if incident is None:
            return _error(404, f"no incident {number}")
        timeline = await manager.store.timeline(number)
        return _json({"incident": with_runbook(incident), "timeline": timeline})

    def severity_of(value: object) -> Severity:
        if value not in {s.value for s in Severity}:
            raise ValueError(f"severity must be P0, P1 or P2, got {value!r}")
        return Severity(value)

    async def report(_request: web.Request, body: dict[str, Any]) -> web.Response:
        url = body.get("url")
        if url is not None and not isinstance(url, str):
            raise ValueError("url must be a string")
        level = body.get("severity")
        incident = await manager.report(
            text(body, "title"), actor(body), url=url or None,
            text=text(body, "text", required=False),
            severity=severity_of(level) if level is not None else None,
        )  # fmt: skip
        return _json({"incident": incident}, status=201)

    async def drill(_request: web.Request, body: dict[str, Any]) -> web.Response:
        level = severity_of(body.get("severity", "P1"))
        return _json({"incident": await manager.drill(level, actor(body))}, status=201)

    async def ack(request: web.Request, body: dict[str, Any]) -> web.Response:
        return _json({"incident": await manager.acknowledge(incident_id(request), actor(body))})

    async def resolve(request: web.Request, body: dict[str, Any]) -> web.Response:
        note = text(body, "note", required=False)
        return _json({"incident": await manager.resolve(incident_id(request), actor(body), note)})

    async def assign(request: web.Request, body: dict[str, Any]) -> web.Response:
        incident = await manager.assign(incident_id(request), text(body, "person"), actor(body))
        return _json({"incident": incident})

    async def comment(request: web.Request, body: dict[str, Any]) -> web.Response:
        incident = await manager.comment(incident_id(request), text(body, "text"), actor(body))
        return _json({"incident": incident})

    async def postmortem(request: web.Request, body: dict[str, Any]) -> web.Response:
        url = text(body, "url")
        if not url.startswith(("https://", "http://")):
            raise ValueError("url must be an http(s) URL")
        incident = await manager.link_postmortem(incident_id(request), url, actor(body))
        return _json({"incident": incident})

    async def severity(request: web.Request, body: dict[str, Any]) -> web.Response:
        level = severity_of(body.get("severity"))
        return _json(
            {"incident": await manager.set_severity(incident_id(request), level, actor(body))}
        )

    async def list_silences(request: web.Request) -> web.Response:
        active = request.query.get("active") in ("1", "true", "yes")
        return _json({"silences": book.active() if active else book.all})

    async def create_silence(_request: web.Request, body: dict[str, Any]) -> web.Response:
        matchers = body.get("matchers")
        if not isinstance(matchers, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in matchers.values()
        ):
            raise ValueError(
                'matchers must be an object of string lists, e.g. {"checks": ["npm-*"]}'
            )
        now = api.clock.now()
        starts = _time(body.get("starts_at")) or now
        if body.get("ends_at"):
            ends = _time(body["ends_at"])
        elif body.get("duration"):
            ends = starts + parse_duration(body["duration"])
        else:
            raise ValueError("give ends_at (ISO time) or duration (e.g. 2h)")
        if ends is None:
            raise ValueError("ends_at is empty")
        silence = await book.add(
            matchers, starts, ends, text(body, "author"), text(body, "comment")
        )
        return _json({"silence": silence}, status=201)

    async def expire_silence(request: web.Request, _body: dict[str, Any]) -> web.Response:
        try:
            number = int(request.match_info["id"])
        except ValueError:
            return _error(400, "a silence id is a number")
        expired = await book.expire(number)
        return _json({"silence": expired}) if expired else _error(404, f"no silence {number}")

    r = app.router
    r.add_get("/api/incidents", list_incidents)
    r.add_post("/api/incidents", write(report))
    r.add_post("/api/drills", write(drill))
    r.add_get("/api/incidents/{id}", get_incident)
    r.add_post("/api/incidents/{id}/ack", write(ack))
    r.add_post("/api/incidents/{id}/resolve", write(resolve))
    r.add_post("/api/incidents/{id}/assign", write(assign))
    r.add_post("/api/incidents/{id}/comment", write(comment))
    r.add_post("/api/incidents/{id}/severity", write(severity))
    r.add_post("/api/incidents/{id}/postmortem", write(postmortem))
    r.add_get("/api/silences", list_silences)
    r.add_post("/api/silences", write(create_silence))
    r.add_post("/api/silences/{id}/expire", write(expire_silence))
    r.add_delete("/api/silences/{id}", write(expire_silence))


def _enum_list(value: str | None, enum: type[Any]) -> list[Any] | None:
    if not value:
        return None
    try:
        return [enum(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown value in {value!r}; use {allowed}") from None


def _time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("times are ISO 8601 strings")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} needs a timezone, e.g. {value}Z")
    return parsed


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
