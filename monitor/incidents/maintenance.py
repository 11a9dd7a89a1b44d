"""Maintenance windows and silences: why paging for a check is held back right now. Pure.

Incidents still open and record failures during maintenance or a silence; the pipeline
stores `suppression(...)` on the incident (`Incident.suppressed`) and pages only when
it is None.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

from pydantic import Field, field_validator, model_validator

from monitor.core.configtypes import PositiveDuration, StrictModel, format_duration
from monitor.core.model import Silence, Suppression, SuppressionKind
from monitor.incidents.calendar import WEEKDAYS, TimeZoneName, Weekday, as_utc, parse_clock, zone
from monitor.incidents.silences import silence_matches

__all__ = ["MaintenanceWindow", "active_window", "silence_matches", "suppression"]

_WEEK = timedelta(days=7)


class MaintenanceWindow(StrictModel):
    """One entry of the top-level `maintenance:` list: a one-off or a recurring window.

    One-off: `start` and `end` (a value without an offset is UTC). Recurring: `at` (local
    to `timezone`) for `duration`, on `weekdays` or, with none given, every day.
    """

    name: str = Field(min_length=1)
    checks: list[str] = Field(default_factory=list, description="Globs on the check name.")
    tags: list[str] = Field(
        default_factory=list, description="With checks: either may match; both empty: all."
    )
    start: datetime | None = None
    end: datetime | None = None
    weekdays: list[Weekday] = Field(default_factory=list, description="Empty: every day.")
    at: str | None = Field(default=None, description="HH:MM local start of a recurring window.")
    duration: PositiveDuration | None = None
    timezone: TimeZoneName = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("at")
    @classmethod
    def _at_ok(cls, value: str | None) -> str | None:
        if value is not None:
            parse_clock(value)
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.at is not None or self.duration is not None or bool(self.weekdays)
        if one_off and recurring:
            raise ValueError(
                "give either start and end (a one-off window) or at and duration "
                "(a recurring window), not both"
            )
        if one_off:
            _check_one_off(self.start, self.end)
        elif recurring:
            _check_recurring(self.at, self.duration)
        else:
            raise ValueError(
                "give start and end (a one-off window) or at and duration (a recurring "
                "window, with optional weekdays)"
            )
        return self

    def matches(self, check: str, tags: frozenset[str]) -> bool:
        if not self.checks and not self.tags:
            return True
        return any(fnmatchcase(check, g) for g in self.checks) or not tags.isdisjoint(self.tags)

    def running_until(self, now: datetime) -> datetime | None:
        """When the occurrence running at `now` ends (UTC); None if none is running."""
        now = as_utc(now)
        try:
            ends = [end for start, end in self._occurrences(now) if start <= now < end]
        except OverflowError:
            return None  # within a week of datetime.min/max: no occurrence to compute
        return max(ends, default=None)

    def _occurrences(self, now: datetime) -> Iterator[tuple[datetime, datetime]]:
        """(start, end) in UTC of every occurrence that may be running at `now`."""
        if self.start is not None and self.end is not None:
            yield self.start, self.end
            return
        if self.at is None or self.duration is None:
            return  # unreachable after validation; keeps mypy and a bad copy honest
        tz, at = zone(self.timezone), parse_clock(self.at)
        today = now.astimezone(tz).date()
        # duration < 7d, so an occurrence running now began at most 7 local days ago.
        for back in range(8):
            day = today - timedelta(days=back)
            if self.weekdays and WEEKDAYS[day.weekday()] not in self.weekdays:
                continue
            # Local wall time → UTC through zoneinfo (fold=0). A start that does not exist
            # (in the spring-forward gap) is read with the offset from before the change:
            # 02:30 in Berlin on the last Sunday of March is 01:30 UTC, 03:30 CEST on the
            # wall clock. An ambiguous start (fall back) is the first, summer-time one. The
            # duration is elapsed time: a 3h window over fall-back spans 4 wall hours.
            start = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
            yield start, start + self.duration


def _check_one_off(start: datetime | None, end: datetime | None) -> None:
    if start is None or end is None:
        raise ValueError("a one-off window needs both start and end")
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")


def _check_recurring(at: str | None, duration: timedelta | None) -> None:
    if at is None or duration is None:
        raise ValueError("a recurring window needs both at (HH:MM) and duration")
    if duration >= _WEEK:
        raise ValueError(
            f"duration {format_duration(duration)} is too long: a recurring window must be "
            "shorter than 7d (use start and end for a longer one-off window)"
        )


def active_window(
    windows: Sequence[MaintenanceWindow], check: str, tags: frozenset[str], now: datetime
) -> tuple[MaintenanceWindow, datetime] | None:
    """The window covering `check` at `now` and when it ends (UTC).

    With several, the one that ends last: paging resumes no earlier than that.
    """
    best: tuple[MaintenanceWindow, datetime] | None = None
    for window in windows:
        if not window.matches(check, tags):
            continue
        end = window.running_until(now)
        if end is not None and (best is None or end > best[1]):
            best = (window, end)
    return best


def suppression(
    windows: Sequence[MaintenanceWindow],
    silences: Sequence[Silence],
    check: str,
    kind: str,
    tags: frozenset[str],
    now: datetime,
) -> Suppression | None:
    """Why paging for `check` is held back at `now`, or None when it may page.

    Maintenance wins over silences: it is planned and says when it ends. Among several
    active silences, the one that ends last is named.
    """
    window = active_window(windows, check, tags, now)
    if window is not None:
        text = f"maintenance {window[0].name!r} until {_utc(window[1])}"
        return Suppression(SuppressionKind.MAINTENANCE, text)
    silence = max(
        (s for s in silences if s.active(now) and silence_matches(s, check, kind, tags)),
        key=_silence_end,
        default=None,
    )
    if silence is None:
        return None
    reason = f"silence #{silence.id} by {silence.author} until {_utc(_silence_end(silence))}"
    text = f"{reason}: {silence.comment}" if silence.comment else reason
    return Suppression(SuppressionKind.SILENCE, text)


def _silence_end(silence: Silence) -> datetime:
    if silence.expired_at is not None:
        return min(silence.ends_at, silence.expired_at)
    return silence.ends_at


def _utc(value: datetime) -> str:
    return f"{as_utc(value):%Y-%m-%d %H:%M} UTC"
