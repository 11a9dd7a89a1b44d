"""Who is on call at a time: rotations with daily windows, handoffs and overrides. Pure.

A rotation has a daily time-of-day window in its timezone (`15:00-03:00` crosses
midnight and belongs to the day it starts), an ordered member list, and a handoff
rule: at each handoff the primary moves to the next member; the secondary is the member
after the primary. When windows overlap, the rotation listed first wins. Overrides put a
person in as primary or secondary for an interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from monitor.core.configtypes import StrictModel
from monitor.incidents.calendar import WEEKDAYS, TimeZoneName, Weekday, as_utc, parse_clock, zone

__all__ = [
    "Handoff",
    "OnCall",
    "OnCallConfig",
    "Override",
    "Person",
    "Rotation",
    "coverage_gaps",
    "format_coverage",
    "format_on_call",
    "handoffs",
    "on_call",
    "person",
]


# Contact ids a person may give as keys of their own; they are kept in `contacts` too.
_CONTACT_KEYS = ("slack", "discord", "email", "pagerduty", "github")


class Person(StrictModel):
    """Someone who can be paged, and how: `contacts` maps the contact a notifier type reads
    (`Notifier.contact`) to this person's id there; each is checked by the notifiers that
    read it. The built-in ones may be given as keys of the person as well."""

    name: str = Field(min_length=1)
    contacts: dict[str, str] = Field(
        default_factory=dict,
        description="Contact ids by the contact a notifier reads (slack, discord, email, "
        "pagerduty, or a plugin notifier's); the keys below are the same",
    )
    slack: str | None = Field(default=None, description="Slack user id, for mentions")
    discord: str | None = Field(default=None, description="Discord user id, for mentions")
    email: str | None = None
    pagerduty: str | None = Field(default=None, description="PagerDuty Events v2 routing key")
    github: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, data: object) -> object:
        """Puts the contact ids given as keys of the person into `contacts`."""
        if not isinstance(data, dict):
            return data
        given = data.get("contacts")
        if given is not None and not isinstance(given, dict):
            return data  # the field's own validation says what is wrong
        contacts = dict(given or {})
        for key in _CONTACT_KEYS:
            value = data.get(key)
            if not isinstance(value, str):
                continue
            if contacts.get(key, value) != value:
                raise ValueError(f"{key} is given twice, as {key}: and in contacts:, differently")
            contacts[key] = value
        return {**data, "contacts": contacts}

    @field_validator("contacts")
    @classmethod
    def _checked(cls, contacts: dict[str, str]) -> dict[str, str]:
        from monitor.notifiers import NOTIFIERS

        checked = {}
        for key, value in contacts.items():
            readers = [n for n in NOTIFIERS.values() if n.contact == key]
            if not readers and key not in _CONTACT_KEYS:
                known = sorted(
                    {*_CONTACT_KEYS, *(n.contact for n in NOTIFIERS.values() if n.contact)}
                )
                raise ValueError(
                    f"no notifier reads the contact {key!r} (known: {', '.join(known)})"
                )
            for reader in readers:
                value = reader.validate_contact(value)
            checked[key] = value
        return checked


class Handoff(StrictModel):
    every: Literal["day", "week"] = "week"
    weekday: Weekday = "mon"
    at: str = "09:00"

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value


class Rotation(StrictModel):
    name: str = Field(min_length=1)
    window: str = Field(
        default="00:00-00:00",
        description="HH:MM-HH:MM local; 00:00-24:00 (or 00:00-00:00) is all day",
    )
    timezone: TimeZoneName = "UTC"
    members: list[str] = Field(min_length=1)
    handoff: Handoff = Field(default_factory=Handoff)
    start: date = Field(
        description="The first member is primary from the first handoff time on this date."
    )

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        begin, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"invalid window {value!r}: use HH:MM-HH:MM, e.g. 15:00-03:00")
        parse_clock(begin)
        _end_clock(end)
        return value

    @property
    def bounds(self) -> tuple[time, time]:
        begin, _, end = self.window.partition("-")
        return parse_clock(begin), _end_clock(end)


def _end_clock(text: str) -> time:
    """A window's end: HH:MM, or 24:00 for the midnight that ends the day (= 00:00)."""
    return time(0, 0) if text.strip() == "24:00" else parse_clock(text)


class Override(StrictModel):
    person: str
    rotation: str | None = None
    as_: Literal["primary", "secondary"] = Field(default="primary", alias="as")
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _order(self) -> Override:
        if as_utc(self.end) <= as_utc(self.start):
            raise ValueError("an override must end after it starts")
        return self


class OnCallConfig(StrictModel):
    """The `oncall:` section."""

    people: list[Person] = Field(default_factory=list)
    rotations: list[Rotation] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> OnCallConfig:
        names = [p.name for p in self.people]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate person name(s): {', '.join(dupes)}")
        known = set(names)
        for r in self.rotations:
            if missing := [m for m in r.members if m not in known]:
                raise ValueError(
                    f"rotation {r.name!r}: unknown member(s) {', '.join(missing)} (add them to people)"
                )
        rotations = {r.name for r in self.rotations}
        for o in self.overrides:
            if o.person not in known:
                raise ValueError(f"override: unknown person {o.person!r}")
            if o.rotation is not None and o.rotation not in rotations:
                raise ValueError(f"override of {o.person!r}: unknown rotation {o.rotation!r}")
        return self


@dataclass(frozen=True, slots=True)
class OnCall:
    rotation: str | None  # None: nobody's window covers that time
    primary: Person | None
    secondary: Person | None
    until: datetime | None  # when this answer may next change


def person(config: OnCallConfig, name: str) -> Person | None:
    return next((p for p in config.people if p.name == name), None)


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0: a wall time that happens twice (autumn) is its first occurrence; one that
    # does not exist (spring) is read with the offset before the change, as zoneinfo does.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _window_at(r: Rotation, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of the rotation's window that contains `at`, in UTC."""
    tz = zone(r.timezone)
    begin, end = r.bounds
    today = at.astimezone(tz).date()
    for day in (today - timedelta(days=1), today):
        start = _local(day, begin, tz)
        stop = _local(day + timedelta(days=1) if end <= begin else day, end, tz)
        if start <= at < stop:
            return start, stop
    return None


def _handoff_count(r: Rotation, at: datetime) -> tuple[int, datetime]:
    """How many handoffs happened after the rotation's start and by `at`, and the next one."""
    tz = zone(r.timezone)
    clock = parse_clock(r.handoff.at)
    step = 7 if r.handoff.every == "week" else 1
    first = r.start
    if step == 7:
        first += timedelta(days=(WEEKDAYS.index(r.handoff.weekday) - first.weekday()) % 7)
    origin = _local(r.start, clock, tz)

    def instant(k: int) -> datetime:
        return _local(first + timedelta(days=k * step), clock, tz)

    k = (at.astimezone(tz).date() - first).days // step
    while k >= 0 and instant(k) > at:
        k -= 1
    while instant(k + 1) <= at:
        k += 1
    lowest = 0 if instant(0) > origin else 1
    return max(0, k - lowest + 1), instant(max(k + 1, 0))


def on_call(config: OnCallConfig, at: datetime) -> OnCall:
    at = as_utc(at)
    active: Rotation | None = None
    window: tuple[datetime, datetime] | None = None
    for r in config.rotations:
        if (found := _window_at(r, at)) is not None:
            active, window = r, found
            break
    primary = secondary = None
    changes: list[datetime] = []
    if active is not None and window is not None:
        count, next_handoff = _handoff_count(active, at)
        members = active.members
        primary = person(config, members[count % len(members)])
        secondary = (
            person(config, members[(count + 1) % len(members)]) if len(members) > 1 else None
        )
        changes += [window[1], next_handoff]
    for o in config.overrides:
        start, end = as_utc(o.start), as_utc(o.end)
        if start > at:
            changes.append(start)
            continue
        if end <= at or (o.rotation is not None and (active is None or o.rotation != active.name)):
            continue
        changes.append(end)
        if o.as_ == "primary":
            primary = person(config, o.person)
        else:
            secondary = person(config, o.person)
    changes += [s for s in (_next_window_start(r, at) for r in config.rotations) if s is not None]
    return OnCall(active.name if active else None, primary, secondary, min(changes, default=None))


def _next_window_start(r: Rotation, at: datetime) -> datetime | None:
    tz = zone(r.timezone)
    begin, _ = r.bounds
    today = at.astimezone(tz).date()
    for day in (today, today + timedelta(days=1)):
        start = _local(day, begin, tz)
        if start > at:
            return start
    return None


def _boundaries(config: OnCallConfig, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in [start, end] at which the answer of `on_call` can change."""
    points = {start, end}
    for r in config.rotations:
        tz = zone(r.timezone)
        begin, stop = r.bounds
        day = start.astimezone(tz).date() - timedelta(days=1)
        while _local(day, begin, tz) <= end:
            for instant in (
                _local(day, begin, tz),
                _local(day + timedelta(days=1) if stop <= begin else day, stop, tz),
            ):
                if start < instant < end:
                    points.add(instant)
            day += timedelta(days=1)
    for o in config.overrides:
        points.update(t for t in (as_utc(o.start), as_utc(o.end)) if start < t < end)
    return sorted(points)


def coverage_gaps(
    config: OnCallConfig, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Intervals in [start, end) with nobody primary, merged."""
    start, end = as_utc(start), as_utc(end)
    gaps: list[tuple[datetime, datetime]] = []
    points = _boundaries(config, start, end)
    for a, b in itertools.pairwise(points):
        if on_call(config, a + (b - a) / 2).primary is None:
            if gaps and gaps[-1][1] == a:
                gaps[-1] = (gaps[-1][0], b)
            else:
                gaps.append((a, b))
    return gaps


def handoffs(config: OnCallConfig, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """When someone new becomes primary, in (start, end]: shift starts and handoffs."""
    start, end = as_utc(start), as_utc(end)
    instants = sorted({*_boundaries(config, start, end), *_handoff_instants(config, start, end)})
    found: list[tuple[datetime, str]] = []
    before = on_call(config, start)
    for instant in instants:
        if not start < instant <= end:
            continue
        now = on_call(config, instant)
        if now.rotation and (now.rotation, now.primary) != (before.rotation, before.primary):
            found.append((instant, now.rotation))
        before = now
    return found


def _handoff_instants(config: OnCallConfig, start: datetime, end: datetime) -> list[datetime]:
    instants = []
    for r in config.rotations:
        _, upcoming = _handoff_count(r, start)
        while upcoming <= end:
            instants.append(upcoming)
            _, upcoming = _handoff_count(r, upcoming)
    return instants


def format_on_call(config: OnCallConfig, at: datetime) -> str:
    now = on_call(config, at)
    if now.rotation is None and now.primary is None:
        return f"{as_utc(at):%Y-%m-%d %H:%M} UTC: nobody is on call" + (
            f" (until {now.until:%Y-%m-%d %H:%M} UTC)" if now.until else ""
        )
    lines = [f"{as_utc(at):%Y-%m-%d %H:%M} UTC, rotation {now.rotation or '(override)'}:"]
    lines.append(f"  primary:   {now.primary.name if now.primary else '-'}")
    lines.append(f"  secondary: {now.secondary.name if now.secondary else '-'}")
    if now.until:
        lines.append(f"  until:     {now.until:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines)


def format_coverage(config: OnCallConfig, start: datetime, weeks: int) -> tuple[str, bool]:
    end = as_utc(start) + timedelta(weeks=weeks)
    gaps = coverage_gaps(config, start, end)
    if not gaps:
        return f"24x7 covered for {weeks} week(s) from {as_utc(start):%Y-%m-%d %H:%M} UTC", False
    lines = [f"{len(gaps)} gap(s) in on-call coverage:"]
    lines += [f"  {a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M} UTC ({b - a})" for a, b in gaps]
    return "\n".join(lines), True
