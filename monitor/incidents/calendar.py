"""Calendar helpers shared by severity rules, maintenance windows and on-call rotations:
weekdays, `HH:MM` times of day, IANA time zones, and datetimes in UTC. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from functools import cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

__all__ = ["WEEKDAYS", "TimeZoneName", "Weekday", "as_utc", "parse_clock", "zone"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    """`HH:MM` (00:00 to 23:59) → a time."""
    m = _CLOCK.match(text.strip())
    if m is None:
        raise ValueError(f"invalid time {text!r}: use HH:MM from 00:00 to 23:59, e.g. 02:30")
    return time(int(m.group(1)), int(m.group(2)))


@cache
def zone(name: str) -> ZoneInfo:
    """The time zone `name`; raises ValueError naming the problem."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # ZoneInfo raises ValueError for malformed keys and OSError for a directory
        # such as "Europe"; config reports all of them the same way.
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as UTC, Europe/Berlin "
            "or America/New_York"
        ) from exc


def _valid_zone(name: str) -> str:
    zone(name)
    return name


TimeZoneName = Annotated[str, AfterValidator(_valid_zone)]


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
