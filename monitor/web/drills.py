"""`/api/drills`: a test of the paging path, through the incident manager."""

from __future__ import annotations

from aiohttp import web

from monitor.web.apischema import DrillBody
from monitor.web.common import IncidentApi, Operation, json_answer

__all__ = ["handlers"]


def handlers(api: IncidentApi) -> dict[str, Operation]:
    async def drill(_request: web.Request, body: DrillBody) -> web.Response:
        incident = await api.manager.drill(body.severity, body.actor)
        return json_answer({"incident": incident}, status=201)

    return {"drill": drill}
