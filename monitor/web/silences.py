"""`/api/silences`: list, create and expire silences, through the silence book."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from monitor.core.configtypes import parse_duration
from monitor.web.apischema import ActorBody, SilenceBody
from monitor.web.common import BadRequest, IncidentApi, Operation, error, id_of, json_answer

__all__ = ["MAX_SILENCE", "SILENCE_HORIZON", "handlers"]

MAX_SILENCE = timedelta(days=366)
SILENCE_HORIZON = timedelta(days=366)  # how far ahead a silence may start


def handlers(api: IncidentApi) -> dict[str, Operation]:
    book = api.silences

    async def list_silences(request: web.Request) -> web.Response:
        active = request.query.get("active") in ("1", "true", "yes")
        return json_answer({"silences": book.active() if active else book.all})

    async def create_silence(_request: web.Request, body: SilenceBody) -> web.Response:
        now = api.clock.now()
        starts, ends = _silence_window(body, now)
        matchers = body.matchers.model_dump()
        try:
            silence = await book.add(matchers, starts, ends, body.author, body.comment)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return json_answer({"silence": silence}, status=201)

    async def expire_silence(request: web.Request, _body: ActorBody) -> web.Response:
        number = id_of(request, "silence")
        expired = await book.expire(number)
        return json_answer({"silence": expired}) if expired else error(404, f"no silence {number}")

    return {
        "list_silences": list_silences,
        "create_silence": create_silence,
        "expire_silence": expire_silence,
    }


def _silence_window(body: SilenceBody, now: datetime) -> tuple[datetime, datetime]:
    """When the silence starts and ends, in UTC, bounded to what a silence can mean."""
    starts = _utc(body.starts_at, "starts_at") if body.starts_at else now
    if not now - SILENCE_HORIZON <= starts <= now + SILENCE_HORIZON:
        raise BadRequest("starts_at must be within a year of now")
    if body.ends_at is not None:
        ends = _utc(body.ends_at, "ends_at")
    elif body.duration is not None:
        try:
            length = parse_duration(body.duration)
        except (ValueError, OverflowError):
            raise BadRequest(
                "duration: use a number and a unit (ms, s, m, h, d, w), e.g. 2h or 1d"
            ) from None
        if length > MAX_SILENCE:
            raise BadRequest("duration: a silence lasts at most 366 days")
        ends = starts + length
    else:
        raise BadRequest("give ends_at (ISO time with a timezone) or duration (e.g. 2h)")
    if ends - starts > MAX_SILENCE:
        raise BadRequest("a silence lasts at most 366 days")
    return starts, ends


def _utc(value: datetime, key: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadRequest(f"{key} is out of range") from None
