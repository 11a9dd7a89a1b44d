"""`Retry-After` (RFC 9110 §10.2.3), read one way for checks, notifiers and the GitHub budget.

Header names are case-insensitive on the wire and in every mapping this reads: a plain
dict with lowercased names (as the GitHub check builds) answers as a `CIMultiDict` does.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from monitor.core.clock import Clock, SystemClock

__all__ = ["MAX_RETRY_AFTER_S", "header", "parse_retry_after", "retry_after", "server_now"]

_SYSTEM_CLOCK = SystemClock()  # when a caller has none to inject (its `now()` only)

# A wait longer than a day is no plausible answer to one request: it is taken as a day.
MAX_RETRY_AFTER_S = 86_400.0


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name`, whatever the case of the name in `headers`."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, found in headers.items():
        if key.lower() == wanted:
            return found
    return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait: delay-seconds, or an HTTP-date compared with `now` (a date in the
    past means now: 0). None when absent or unreadable (negative, not a number, not a
    date); at most `MAX_RETRY_AFTER_S`."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return min(seconds, MAX_RETRY_AFTER_S)
    try:
        at = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        wait = (at - now).total_seconds()
    except OverflowError:  # pragma: no cover  dates are bounded by parsedate
        return None
    return min(max(0.0, wait), MAX_RETRY_AFTER_S)


def retry_after(
    headers: Mapping[str, str], now: datetime | None = None, *, clock: Clock | None = None
) -> float | None:
    """`Retry-After` of a response, looked up case-insensitively; see `parse_retry_after`.

    An HTTP-date is compared with `now`, by default the server's own time (its `Date`
    header), so it means the same wait whatever the local clock says; `clock` is the
    local clock for a server that sent no `Date`.
    """
    return parse_retry_after(
        header(headers, "Retry-After"), server_now(headers, clock) if now is None else now
    )


def server_now(headers: Mapping[str, str], clock: Clock | None = None) -> datetime:
    """The server's time from its `Date` header; `clock`'s time when it sent none."""
    try:
        at = email.utils.parsedate_to_datetime(header(headers, "Date") or "")
    except (TypeError, ValueError, IndexError, OverflowError):
        return (clock or _SYSTEM_CLOCK).now()
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
