"""What every resource module of the API shares: JSON answers, request bodies read into
their pydantic models within limits, ids from the path, and the read/write guards.

A resource module (`web.incidents`, `web.silences`, `web.drills`, `web.health`) holds
handlers that parse the request, call the incident manager (or the silence book) and
answer; `web.api` mounts them on the routes of `web.apischema.ROUTES`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from monitor.core.clock import Clock
from monitor.core.model import Incident
from monitor.core.redact import redact, redact_text
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.web.apischema import MAX_BODY_BYTES, BodyTooDeep, check_depth

__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_ID",
    "BadRequest",
    "Handler",
    "IncidentApi",
    "Operation",
    "already_current",
    "body",
    "enum_list",
    "error",
    "id_of",
    "json_answer",
    "read",
    "to_json",
    "write",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A resource's handler: (request) for a read, (request, body) for a write.
Operation = Callable[..., Awaitable[web.Response]]

BODY_TIMEOUT_S = 10.0  # a request's body must arrive within this
MAX_ID = 2**63 - 1  # SQLite's INTEGER: a larger id names nothing


@dataclasses.dataclass(frozen=True, slots=True)
class IncidentApi:
    """What the incident routes need."""

    manager: IncidentManager
    silences: SilenceBook
    clock: Clock
    token: str | None  # None: the write API is off
    # The incident's runbook (its check's, else its rule's), shown with it.
    runbook_of: Callable[[Incident], str | None] = lambda _incident: None


async def already_current() -> None:
    """What a view awaits before reading check readings in one daemon: nothing, its
    readings are its own pipeline's (a replica of a fleet reads the others' rows)."""


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


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": redact_text(message)}, status=status)


def json_answer(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(redact(to_json(value))), status=status, content_type="application/json"
    )


class BadRequest(Exception):
    """A client error found while reading the request: answered with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_Model = TypeVar("_Model", bound=BaseModel)


async def body(request: web.Request, model: type[_Model]) -> _Model:
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            raw = await request.read() if request.can_read_body else b""
    except TimeoutError:
        raise BadRequest(f"the body did not arrive within {BODY_TIMEOUT_S:g}s", 408) from None
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
    if not raw.strip():
        raw = b"{}"
    try:
        check_depth(raw)
        return model.model_validate_json(raw)
    except BodyTooDeep as exc:
        raise BadRequest(str(exc)) from None
    except ValidationError as exc:
        raise BadRequest(_problems(exc)) from None


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


def id_of(request: web.Request, what: str) -> int:
    text = request.match_info["id"]
    if not text.isascii() or not text.isdigit() or len(text) > 30:
        raise BadRequest(f"{'an' if what == 'incident' else 'a'} {what} id is a number")
    number = int(text)
    if not 0 < number <= MAX_ID:
        raise BadRequest(f"no {what} {number}", 404)
    return number


def enum_list(value: str | None, enum: type[Any]) -> list[Any] | None:
    if not value:
        return None
    try:
        return [enum(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"unknown value; use {allowed}") from None


def write(token: str | None, model: type[BaseModel], handler: Operation) -> Handler:
    """A write route: the bearer token, then the body read into `model`."""

    async def guarded(request: web.Request) -> web.Response:
        if token is None:
            return error(403, "the write API is off: set api.token in the config")
        if not _authorized(request.headers.get("Authorization", ""), token):
            return error(401, "missing or wrong bearer token")
        try:
            return await handler(request, await body(request, model))
        except BadRequest as exc:
            response = error(exc.status, str(exc))
            if exc.status in (408, 413):
                # The rest of that body is not worth waiting for (aiohttp would
                # linger reading it): the connection ends with the answer.
                response.force_close()
            return response

    return guarded


def read(handler: Operation) -> Handler:
    """A read route: open, its client errors answered as JSON."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(exc.status, str(exc))

    return guarded
