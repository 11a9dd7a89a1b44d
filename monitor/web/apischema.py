"""The API's contract: request bodies as pydantic models, the routes, and the OpenAPI
document built from both (served at `/api/openapi.json`, kept in `docs/openapi.json`).

Bodies are small JSON objects: at most `MAX_BODY_BYTES` and `MAX_JSON_DEPTH` levels of
nesting, checked before anything parses them. Unknown keys are refused, so a typo
(`"duraton"`) is an error rather than a silently ignored field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from monitor import __version__
from monitor.core.model import Severity
from monitor.incidents.public import HISTORY_DAYS, MAX_HISTORY, MAX_PUBLIC_NOTE

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "ROUTES",
    "BodyTooDeep",
    "Route",
    "check_depth",
    "openapi_document",
]

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^https?://\S+$")]  # fmt: skip
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Duration = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    actor: Name = Field("api", description="Who does this (shown in the timeline)")


class ReportBody(_Body):
    title: Title
    text: OptionalText = ""
    url: Url | None = None
    severity: Severity | None = None


class DrillBody(_Body):
    severity: Severity = Severity.P1


class ActorBody(_Body):
    pass


class ResolveBody(_Body):
    note: OptionalText = ""


class AssignBody(_Body):
    person: Name


class CommentBody(_Body):
    text: Text


class PostmortemBody(_Body):
    url: Url


class SeverityBody(_Body):
    severity: Severity


class PublicNoteBody(_Body):
    note: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PUBLIC_NOTE)
    ] = Field(description="What the status page says of the incident: written for the public")


class Matchers(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    checks: list[Pattern] = Field(default_factory=list, max_length=100)
    tags: list[Pattern] = Field(default_factory=list, max_length=100)
    kinds: list[Pattern] = Field(default_factory=list, max_length=100)


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    matchers: Matchers
    starts_at: AwareDatetime | None = Field(None, description="Default: now")
    ends_at: AwareDatetime | None = None
    duration: Duration | None = Field(None, description="e.g. 2h; instead of ends_at")
    author: Name
    comment: Text


class BodyTooDeep(ValueError):
    pass


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def check_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raises BodyTooDeep when `raw` nests arrays/objects deeper than `limit`.

    Linear in the body: strings are skipped first, so brackets inside them do not count.
    Malformed JSON is left to the parser.
    """
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", raw)):
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                raise BodyTooDeep(f"the body nests deeper than {limit} levels")
        else:
            depth -= 1


@dataclass(frozen=True, slots=True)
class Route:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    operation: str  # the handler's name in its resource module (web.incidents, …)
    summary: str
    body: type[BaseModel] | None = None
    write: bool = False  # needs the bearer token
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    statuses: tuple[int, ...] = (200,)


_ID = "/{id}"
_BADGE_QUERY = (("label", "The text on the left (at most 64 characters)"),)
_BADGE_STATUSES = (200, 304, 400, 404, 503)
BADGE_WINDOWS = ("24h", "7d", "30d", "90d")  # `engine.history.WINDOWS`
ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "healthz", "Liveness: the process answers"),
    Route("GET", "/readyz", "readyz", "Readiness: checks are scheduled", statuses=(200, 503)),
    Route("GET", "/metrics", "metrics", "Prometheus exposition"),
    Route("GET", "/api/openapi.json", "openapi", "This document"),
    Route("GET", "/api/incidents", "list_incidents", "List incidents, newest first",
          query=(("state", "Comma-separated: triggered, acknowledged, resolved"),
                 ("severity", "Comma-separated: P0, P1, P2"),
                 ("limit", "1-1000, default 100")), statuses=(200, 400)),
    Route("POST", "/api/incidents", "report", "Report an incident by hand", ReportBody, True, statuses=(201,)),
    Route("POST", "/api/drills", "drill", "Open a drill incident (a paging test)", DrillBody, True, statuses=(201,)),
    Route("GET", "/api/incidents/history", "incident_history",
          "Resolved incidents of the assets, last resolved first, as the public may see them"
          " (the public note or the title; never the timeline)",
          query=(("days", f"1-{HISTORY_DAYS}, default {HISTORY_DAYS}"),
                 ("limit", f"1-{MAX_HISTORY}, default {MAX_HISTORY}")), statuses=(200, 400)),
    Route("GET", "/api/incidents" + _ID, "get_incident", "One incident and its timeline", statuses=(200, 400, 404)),
    Route("POST", f"/api/incidents{_ID}/ack", "ack", "Acknowledge", ActorBody, True),
    Route("POST", f"/api/incidents{_ID}/resolve", "resolve", "Resolve", ResolveBody, True),
    Route("POST", f"/api/incidents{_ID}/assign", "assign", "Assign to a person", AssignBody, True),
    Route("POST", f"/api/incidents{_ID}/comment", "comment", "Add a comment", CommentBody, True),
    Route("POST", f"/api/incidents{_ID}/severity", "set_severity", "Set the severity", SeverityBody, True),
    Route("POST", f"/api/incidents{_ID}/postmortem", "postmortem", "Link the post-mortem", PostmortemBody, True),
    Route("PUT", f"/api/incidents{_ID}/public-note", "set_public_note",
          "Set what the status page says of the incident", PublicNoteBody, True, statuses=(200, 422)),
    Route("DELETE", f"/api/incidents{_ID}/public-note", "clear_public_note",
          "Clear the public note (the status page shows the title)", ActorBody, True),
    Route("GET", "/api/silences", "list_silences", "List silences",
          query=(("active", "1, true or yes: only those active now"),)),
    Route("POST", "/api/silences", "create_silence", "Create a silence (at most 366 days, starting within a year)",
          SilenceBody, True, statuses=(201,)),
    Route("POST", f"/api/silences{_ID}/expire", "expire_silence", "Expire a silence now", ActorBody, True),
    Route("DELETE", f"/api/silences{_ID}", "expire_silence", "Expire a silence now", ActorBody, True),
    Route("GET", "/api/status", "status", "The status page's data"),
    Route("GET", "/api/assets/{name}/history", "asset_history",
          "A check's uptime (24h, 7d, 30d, 90d), buckets and latency over one window",
          query=(("window", "24h, 7d, 30d (default) or 90d"),), statuses=(200, 400, 404)),
    Route("GET", "/", "page", "The status page (HTML)",
          query=(("q", "text in a check's name, description or tags"),
                 ("state", "failing, down, degraded, blind, unknown or up"),
                 ("group", "a group's name"), ("page", "page number, from 1"),
                 ("per_page", "assets a page, 1 to 100 (default 50)"))),
    Route("GET", "/assets/{name}", "asset_page",
          "An asset's page (HTML): uptime, 90 days, response time, incidents",
          statuses=(200, 404)),
    # A group's badges first: the router takes the first route that matches.
    Route("GET", "/badge/group/{group}/status.svg", "group_status_badge",
          "A group's status as a badge (SVG): its worst known check", query=_BADGE_QUERY,
          statuses=_BADGE_STATUSES),
    Route("GET", "/badge/group/{group}/uptime/{window}.svg", "group_uptime_badge",
          "A group's uptime over a window as a badge (SVG)", query=_BADGE_QUERY,
          statuses=_BADGE_STATUSES),
    Route("GET", "/badge/{check}/status.svg", "status_badge", "A check's status as a badge (SVG)",
          query=_BADGE_QUERY, statuses=_BADGE_STATUSES),
    Route("GET", "/badge/{check}/uptime/{window}.svg", "uptime_badge",
          "A check's uptime over a window as a badge (SVG)", query=_BADGE_QUERY,
          statuses=_BADGE_STATUSES),
)  # fmt: skip

_REASONS = {
    200: "OK", 201: "Created", 400: "Invalid request", 401: "Missing or wrong bearer token",
    403: "The write API is off", 404: "Not found", 409: "Conflicts with the current state",
    408: "The body did not arrive in time", 413: "Body too large", 503: "Not ready",
    422: "Cannot be carried out as given",
}  # fmt: skip


def openapi_document(routes: tuple[Route, ...] = ROUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (what `/api/openapi.json` serves)."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {"operationId": f"{route.operation}_{route.method.lower()}",
                              "summary": route.summary}  # fmt: skip
        params: list[dict[str, Any]] = []
        if "{id}" in route.path:
            params.append({"name": "id", "in": "path", "required": True,
                           "schema": {"type": "integer", "minimum": 1}})  # fmt: skip
        if "{name}" in route.path:
            params.append({"name": "name", "in": "path", "required": True,
                           "schema": {"type": "string"}})  # fmt: skip
        for name in ("check", "group"):
            if f"{{{name}}}" in route.path:
                params.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string"}})  # fmt: skip
        if "{window}" in route.path:
            params.append({"name": "window", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": list(BADGE_WINDOWS)}})  # fmt: skip
        params += [
            {"name": n, "in": "query", "required": False, "description": d,
             "schema": {"type": "string"}}
            for n, d in route.query
        ]  # fmt: skip
        if params:
            op["parameters"] = params
        statuses = set(route.statuses)
        if route.body is not None:
            name = route.body.__name__
            model_schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for sub, sub_schema in model_schema.pop("$defs", {}).items():
                schemas[sub] = sub_schema
            schemas[name] = model_schema
            op["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
            statuses |= {400, 408, 413}
        if route.write:
            op["security"] = [{"bearer": []}]
            statuses |= {401, 403, 409}
        if "{id}" in route.path:
            statuses |= {400, 404}
        op["responses"] = {str(s): _response(s, route) for s in sorted(statuses)}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Project asset monitor API",
            "version": __version__,
            "description": "Reads are open; writes need `Authorization: Bearer <api.token>`. "
            'Every error is a JSON object `{"error": "…"}`.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _response(status: int, route: Route) -> dict[str, Any]:
    if route.operation in ("page", "asset_page"):  # HTML, its "not found" too
        return {"description": _REASONS.get(status, "OK"),
                "content": {"text/html": {"schema": {"type": "string"}}}}  # fmt: skip
    if status >= 400 and not (
        (status == 503 and route.operation == "readyz")
        or (status in (404, 503) and route.operation.endswith("_badge"))
    ):
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    elif route.operation == "metrics":
        content = {"text/plain": {"schema": {"type": "string"}}}
    elif route.operation.endswith("_badge"):
        if status == 304:
            return {"description": "Not modified (If-None-Match)"}
        content = {"image/svg+xml": {"schema": {"type": "string"}}}
    else:
        content = {"application/json": {"schema": {"type": "object"}}}
    return {"description": _REASONS.get(status, "OK"), "content": content}


def render() -> str:
    """The document as kept in the repository (`python -m monitor.web.apischema`)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
