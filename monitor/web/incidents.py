"""`/api/incidents`: list, read, report, acknowledge, resolve, assign, comment, link a
post-mortem, set the severity, set or clear the public note, and the public history of
resolved incidents. Every handler calls the incident manager only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from monitor.core.model import Incident, IncidentStatus, Severity
from monitor.incidents.public import HISTORY_DAYS, MAX_HISTORY
from monitor.web.apischema import (
    ActorBody,
    AssignBody,
    CommentBody,
    PostmortemBody,
    PublicNoteBody,
    ReportBody,
    ResolveBody,
    SeverityBody,
)
from monitor.web.common import IncidentApi, Operation, enum_list, error, id_of, json_answer, to_json

__all__ = ["handlers"]


def handlers(api: IncidentApi) -> dict[str, Operation]:
    """The incident operations of `web.apischema.ROUTES`, by operation name."""
    manager = api.manager

    def with_runbook(incident: Incident) -> dict[str, Any]:
        doc: dict[str, Any] = to_json(incident)
        doc["runbook"] = api.runbook_of(incident)
        return doc

    async def list_incidents(request: web.Request) -> web.Response:
        try:
            statuses = enum_list(request.query.get("state"), IncidentStatus)
            severities = enum_list(request.query.get("severity"), Severity)
            text = request.query.get("limit", "100").strip()
            if not text.isascii() or not text.isdigit() or len(text) > 6:
                raise ValueError("limit is a number from 1 to 1000")
            limit = int(text)
        except ValueError as exc:
            return error(400, str(exc))
        found = await manager.find(
            statuses=statuses, severities=severities, limit=max(1, min(limit, 1000))
        )
        return json_answer({"incidents": [with_runbook(i) for i in found]})

    async def get_incident(request: web.Request) -> web.Response:
        incident, timeline = await manager.get(id_of(request, "incident"))
        return json_answer({"incident": with_runbook(incident), "timeline": timeline})

    async def report(_request: web.Request, body: ReportBody) -> web.Response:
        incident = await manager.report(
            body.title, body.actor, url=body.url, text=body.text, severity=body.severity
        )
        return json_answer({"incident": incident}, status=201)

    async def ack(request: web.Request, body: ActorBody) -> web.Response:
        number = id_of(request, "incident")
        return json_answer({"incident": await manager.acknowledge(number, body.actor)})

    async def resolve(request: web.Request, body: ResolveBody) -> web.Response:
        number = id_of(request, "incident")
        return json_answer({"incident": await manager.resolve(number, body.actor, body.note)})

    async def assign(request: web.Request, body: AssignBody) -> web.Response:
        incident = await manager.assign(id_of(request, "incident"), body.person, body.actor)
        return json_answer({"incident": incident})

    async def comment(request: web.Request, body: CommentBody) -> web.Response:
        incident = await manager.comment(id_of(request, "incident"), body.text, body.actor)
        return json_answer({"incident": incident})

    async def postmortem(request: web.Request, body: PostmortemBody) -> web.Response:
        incident = await manager.link_postmortem(id_of(request, "incident"), body.url, body.actor)
        return json_answer({"incident": incident})

    async def set_severity(request: web.Request, body: SeverityBody) -> web.Response:
        number = id_of(request, "incident")
        incident = await manager.set_severity(number, body.severity, body.actor)
        return json_answer({"incident": incident})

    async def set_public_note(request: web.Request, body: PublicNoteBody) -> web.Response:
        incident = await manager.set_public_note(id_of(request, "incident"), body.note, body.actor)
        return json_answer({"incident": incident})

    async def clear_public_note(request: web.Request, body: ActorBody) -> web.Response:
        incident = await manager.set_public_note(id_of(request, "incident"), None, body.actor)
        return json_answer({"incident": incident})

    async def incident_history(request: web.Request) -> web.Response:
        try:
            days = _number(request.query.get("days"), HISTORY_DAYS, "days")
            limit = _number(request.query.get("limit"), MAX_HISTORY, "limit")
        except ValueError as exc:
            return error(400, str(exc))
        since = api.clock.now() - timedelta(days=days)
        found = await manager.public_history(since, limit)
        return json_answer({
            "days": days, "since": since.isoformat(timespec="seconds"),
            "incidents": [p.to_json() for p in found],
        })  # fmt: skip

    return {
        "list_incidents": list_incidents, "get_incident": get_incident, "report": report,
        "ack": ack, "resolve": resolve, "assign": assign, "comment": comment,
        "postmortem": postmortem, "set_severity": set_severity,
        "set_public_note": set_public_note, "clear_public_note": clear_public_note,
        "incident_history": incident_history,
    }  # fmt: skip


def _number(text: str | None, most: int, name: str) -> int:
    """A query's whole number from 1 to `most`; `most` when not given."""
    if text is None:
        return most
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= most:
        raise ValueError(f"{name} is a number from 1 to {most}")
    return int(text)
