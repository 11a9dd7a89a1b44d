"""`/api/assets/{name}/history`: a check's uptime over 24 h, 7 d, 30 d and 90 d, and the
buckets and latency of one window, from the persisted history (`engine.history`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.engine.history import WINDOWS, HistoryView
from monitor.web.common import Operation, error, json_answer

__all__ = ["HistoryApi", "handlers"]


@dataclass(frozen=True, slots=True)
class HistoryApi:
    """What the history route needs: the figures, and whether a name is a configured check."""

    view: HistoryView
    known: Callable[[str], bool]
    # The SLOs the check counts in (`web.slo.slo_json`): the answer's `slo` list.
    slo: Callable[[str], list[dict[str, Any]]] | None = None


def handlers(api: HistoryApi) -> dict[str, Operation]:
    """The history operation of `web.apischema.ROUTES`, by operation name."""

    async def asset_history(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        window = request.query.get("window", "30d")
        if window not in WINDOWS:
            return error(400, f"window is one of {', '.join(WINDOWS)}")
        if not api.known(name):
            return error(404, "no such check")
        figures = await api.view.figures(name, window)
        if api.slo is not None:
            figures["slo"] = api.slo(name)
        return json_answer(figures)

    return {"asset_history": asset_history}
