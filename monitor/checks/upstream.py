"""Talking to package registries and APIs: JSON fetches whose every failure is a value.

`fetch_json` returns a `JsonReply` or an `Observation` saying why there is none:
upstream unavailable (no connection, timeout, 5xx), rate limited (429, or 403 with an
exhausted budget), auth (401/403), or schema (an HTML error page, a login page, cut or
malformed JSON). Parsers read documents with `dig`, which never raises on wrong types,
so malformed upstream data becomes a classified failure, not a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from monitor.checks.failures import classify_exception, not_json, status_failure
from monitor.checks.http.httpclient import read_capped
from monitor.core import jsonbody
from monitor.core.model import FailureKind, Observation
from monitor.core.retryafter import retry_after

__all__ = ["JsonReply", "dig", "fetch_json", "parse_time", "retry_after_s"]

T = TypeVar("T")

MAX_JSON_BYTES = 32 * 1024 * 1024  # a registry document larger than this is not plausible


@dataclass(frozen=True, slots=True)
class JsonReply:
    status: int
    headers: CIMultiDictProxy[str]
    doc: Any
    url: str


async def fetch_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    what: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    accept_status: tuple[int, ...] = (),
    max_bytes: int = MAX_JSON_BYTES,
) -> JsonReply | Observation:
    """Requests `url` and decodes a JSON body.

    Statuses in `accept_status` (for example 404, or 304) come back as a reply even
    though they are not 2xx; their body may be None. `what` names the upstream in
    messages ("registry", "marketplace", "GitHub API").
    """
    try:
        async with session.request(method, url, headers=headers, json=body) as resp:
            status = resp.status
            if not (200 <= status < 300 or status in accept_status):
                return _bad_status(resp, what)
            raw, truncated = await read_capped(resp.content, max_bytes)
            resp_headers, final_url, ctype = resp.headers, str(resp.url), resp.content_type
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        cause, message = classify_exception(exc)
        return Observation.down(
            FailureKind.UNAVAILABLE, f"{what} unavailable: {message}", cause=cause.value
        )
    if truncated:
        return Observation.down(
            FailureKind.SCHEMA, f"{what} answer larger than {max_bytes:,} bytes"
        )
    if not raw.strip():
        return JsonReply(status, resp_headers, None, final_url)
    try:
        doc = jsonbody.loads(raw)
    except ValueError as exc:
        kind, hint = not_json(ctype, exc)
        if "html" in ctype and final_url != url:
            hint += f" after a redirect to {final_url} (a login or error page?)"
        return Observation.down(kind, f"{what} answered {status} with {hint}")
    return JsonReply(status, resp_headers, doc, final_url)


def _bad_status(resp: aiohttp.ClientResponse, what: str) -> Observation:
    status = resp.status
    got = f"{status} {resp.reason or ''}".strip()
    retry = retry_after_s(resp.headers)
    exhausted = resp.headers.get("x-ratelimit-remaining") == "0"
    kind = status_failure(status, rate_limited=status == 403 and (exhausted or retry is not None))
    if kind is FailureKind.RATE_LIMITED:
        message = f"{what} rate limit reached ({got})"
        if retry is not None:
            message += f"; retry after {retry:g}s"
        return Observation.down(kind, message, status=status, retry_after_s=retry)
    message = {
        FailureKind.AUTH: f"{what} refused the credentials ({got})",
        FailureKind.UNAVAILABLE: f"{what} unavailable: {got}",
    }.get(kind, f"{what} answered {got}")
    return Observation.down(kind, message, status=status)


def retry_after_s(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP-date), any header case."""
    return retry_after(headers, now)


def dig(doc: Any, *path: str | int, kind: type[T]) -> T | None:
    """`doc[path…]` if every step exists and the value is a `kind`, else None."""
    for part in path:
        if isinstance(part, int) and isinstance(doc, list) and -len(doc) <= part < len(doc):
            doc = doc[part]
        elif isinstance(part, str) and isinstance(doc, dict):
            doc = doc.get(part)
        else:
            return None
    if kind is float and isinstance(doc, int) and not isinstance(doc, bool):
        return float(doc)  # type: ignore[return-value]  # T is float here
    if isinstance(doc, bool) and kind is not bool:
        return None
    return doc if isinstance(doc, kind) else None


def parse_time(value: object) -> datetime | None:
    """ISO 8601 as registries write it: `Z` or `+00:00`, 0-7 fraction digits. Naive → UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
