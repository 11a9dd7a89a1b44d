"""Severity rules: which incidents a failing check opens, P0 to P2, or none. Pure.

The pipeline asks `classify(rules, situation)` after the alert state changes or a
failing check runs again; the first rule whose matcher fits wins. `Verdict.trace`
says, rule by rule, why each one did or did not match (`monitor explain`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from fnmatch import fnmatchcase
from functools import cache
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.core.alertstate import AlertState
from monitor.core.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from monitor.core.model import FailureKind, Severity
from monitor.incidents.calendar import WEEKDAYS, TimeZoneName, Weekday, as_utc, parse_clock, zone

__all__ = [
    "DEFAULT_RULE",
    "BurnLevel",
    "RaiseAfter",
    "RuleMatch",
    "SeverityRule",
    "Situation",
    "TimeOfDay",
    "Verdict",
    "classify",
]

DEFAULT_RULE = "default"

# ---- config -----------------------------------------------------------------------


class TimeOfDay(StrictModel):
    """Local hours (and optionally days) when a rule applies, e.g. office hours.

    `between: 22:00-06:00` crosses midnight; `days` then names the day the span began,
    so `days: [fri]` covers Friday 22:00 to Saturday 06:00.
    """

    days: list[Weekday] = Field(default_factory=list, description="Empty: every day.")
    between: str = Field(description="HH:MM-HH:MM local time; may cross midnight.")
    timezone: TimeZoneName = "UTC"

    @field_validator("between")
    @classmethod
    def _between_ok(cls, value: str) -> str:
        _span(value)
        return value

    def contains(self, now: datetime) -> bool:
        return _in_span(self, now)

    def describe(self) -> str:
        days = ", ".join(self.days) + " " if self.days else ""
        return f"{days}{self.between}"


@cache
def _span(text: str) -> tuple[time, time]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"invalid span {text!r}: use HH:MM-HH:MM, e.g. 09:00-17:00 or 22:00-06:00")
    span = parse_clock(start), parse_clock(end)
    if span[0] == span[1]:
        raise ValueError(f"empty span {text!r}: start and end must differ")
    return span


def _in_span(tod: TimeOfDay, now: datetime) -> bool:
    try:
        local = as_utc(now).astimezone(zone(tod.timezone))
    except OverflowError:
        return False  # within hours of datetime.min/max: no local time to compare
    start, end = _span(tod.between)
    t, weekday = local.time(), local.weekday()
    if start < end:
        inside = start <= t < end
    elif t >= start:
        inside = True  # the evening part of a span that crosses midnight
    elif t < end:
        # The morning part began yesterday. Weekday arithmetic, not date arithmetic:
        # 0001-01-01 has no yesterday.
        inside, weekday = True, (weekday - 1) % 7
    else:
        inside = False
    return inside and (not tod.days or WEEKDAYS[weekday] in tod.days)


_FAILURE_KINDS = tuple(k.value for k in FailureKind)


def _known_failure(value: str) -> str:
    if value not in _FAILURE_KINDS:
        close = difflib.get_close_matches(value, _FAILURE_KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown failure kind {value!r}; {hint}valid kinds: {', '.join(_FAILURE_KINDS)}"
        )
    return value


FailureKindName = Annotated[
    str,
    AfterValidator(_known_failure),
    WithJsonSchema({"type": "string", "enum": list(_FAILURE_KINDS)}),
]


BurnLevel = Literal["fast", "slow"]


def _one_or_more(value: object) -> object:
    """`burn_rate: fast` is `burn_rate: [fast]`."""
    return [value] if isinstance(value, str) else value


class RuleMatch(StrictModel):
    """What a rule applies to. Every field given must match; any value within a field may.

    An empty field matches everything; `states` empty means down or degraded. A blind
    check (the monitor could not observe it) matches only rules that name `blind`.
    """

    checks: list[str] = Field(default_factory=list, description="Globs on the check name.")
    kinds: list[str] = Field(default_factory=list, description="Check kinds: http, npm, …")
    tags: list[str] = Field(default_factory=list, description="Matches if any tag is present.")
    failures: list[FailureKindName] = Field(default_factory=list, description="Failure kinds.")
    states: list[Literal["down", "degraded", "blind"]] = Field(
        default_factory=list, description="Empty: down or degraded. blind must be named."
    )
    for_: Duration | None = Field(
        default=None, alias="for", description="Only once failing at least this long."
    )
    time: TimeOfDay | None = None
    burn_rate: Annotated[list[BurnLevel], BeforeValidator(_one_or_more)] = Field(
        default_factory=list,
        description="An SLO burning its error budget: fast (1h/5m above 14.4x or 6h/30m above "
        "6x) or slow (3d/6h above 1x; a fast burn is slow too). Only rules naming it "
        "match a burn, and they match nothing else.",
    )

    # Spelled out rather than `StrictModel.model_config | {...}` so that the pydantic mypy
    # plugin sees populate_by_name and accepts `RuleMatch(for_=...)`.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Level = Literal["P0", "P1", "P2"]


class RaiseAfter(StrictModel):
    """Once the check has failed for `after`, the incident is at least `severity`."""

    after: PositiveDuration
    severity: Level


class SeverityRule(StrictModel):
    """One entry of the top-level `severity:` list; the first that matches wins."""

    name: str | None = Field(default=None, min_length=1)
    match: RuleMatch = Field(default_factory=RuleMatch)
    severity: Literal["P0", "P1", "P2", "ignore"]
    raise_after: list[RaiseAfter] = Field(
        default_factory=list, description="Worse severities for failures that last."
    )
    auto_resolve: bool = Field(
        default=True, description="False: an incident stays open until a person resolves it."
    )
    runbook: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Runbook URL of its incidents when their check names none.",
    )

    @model_validator(mode="after")
    def _only_raises(self) -> SeverityRule:
        prev_level, prev_after, prev_what = _level(self.severity), None, "the rule's severity"
        for i, step in enumerate(self.raise_after):
            level = Severity(step.severity)
            if not level.worse_than(prev_level):
                raise ValueError(
                    f"raise_after[{i}]: {step.severity} does not raise {prev_what} "
                    f"{self.severity if i == 0 else prev_level}; raise_after may only make "
                    "the severity worse (P0 is the worst)"
                )
            if prev_after is not None and step.after <= prev_after:
                raise ValueError(
                    f"raise_after[{i}]: after {format_duration(step.after)} must be longer than "
                    f"the previous entry's {format_duration(prev_after)}"
                )
            prev_level, prev_after, prev_what = level, step.after, "the previous entry"
        return self


def _level(value: str) -> Severity | None:
    return None if value == "ignore" else Severity(value)


# ---- runtime ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Situation:
    """What is being classified: a check in its alert state at `now`."""

    check: str
    kind: str
    tags: frozenset[str]
    failure: str | None
    state: AlertState
    failing_for: timedelta
    now: datetime
    burn_rate: BurnLevel | None = None  # an SLO's burn (`engine.slo`); None: a check's run


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of `classify`. `severity` None: open no incident."""

    severity: Severity | None
    rule: str  # the rule's name, "severity[3]" when unnamed, or "default"
    auto_resolve: bool
    trace: tuple[str, ...]  # one line per rule examined, for `monitor explain`


_FAILING = (AlertState.DOWN, AlertState.DEGRADED, AlertState.BLIND)


def classify(rules: Sequence[SeverityRule], s: Situation) -> Verdict:
    """The severity of `s`: the first matching rule's, raised by how long it has failed.

    With no match, a DOWN check is P2 and a DEGRADED or BLIND one opens nothing. A check
    that is UP or UNKNOWN is not failing: no rule is examined and the verdict is to ignore
    it.
    """
    if s.state not in _FAILING:
        line = f"state '{s.state.value}': not failing, nothing to classify"
        return Verdict(None, DEFAULT_RULE, True, (line,))
    trace: list[str] = []
    for i, rule in enumerate(rules):
        head = f"severity[{i}] {rule.name}" if rule.name else f"severity[{i}]"
        misses = _misses(rule.match, s)
        if misses:
            trace.append(f"{head}: no match: {'; '.join(misses)}")
            continue
        severity, outcome = _effective(rule, s.failing_for)
        trace.append(f"{head}: match → {outcome}")
        return Verdict(severity, rule.name or f"severity[{i}]", rule.auto_resolve, tuple(trace))
    if s.burn_rate is not None:  # an SLO burn opens an incident only by a rule's say
        trace.append(f"default: no rule matched; burning {s.burn_rate} → ignore")
        return Verdict(None, DEFAULT_RULE, True, tuple(trace))
    severity = Severity.P2 if s.state is AlertState.DOWN else None
    trace.append(f"default: no rule matched; {s.state.value} → {severity or 'ignore'}")
    return Verdict(severity, DEFAULT_RULE, True, tuple(trace))


def _misses(m: RuleMatch, s: Situation) -> list[str]:
    """Every reason `m` does not fit `s`; empty when it does."""
    if s.burn_rate is not None or m.burn_rate:
        return _burn_misses(m, s)
    misses = []
    if m.checks and not any(fnmatchcase(s.check, g) for g in m.checks):
        misses.append(f"check {s.check!r} matches none of {_list(m.checks)}")
    if m.kinds and s.kind not in m.kinds:
        misses.append(f"kind {s.kind!r} is not one of {_list(m.kinds)}")
    if m.tags and s.tags.isdisjoint(m.tags):
        if s.tags:
            misses.append(f"tags {_list(sorted(s.tags))} include none of {_list(m.tags)}")
        else:
            misses.append(f"no tags, wants one of {_list(m.tags)}")
    if m.failures and s.failure not in m.failures:
        if s.failure is None:
            misses.append(f"no failure kind, wants one of {_list(m.failures)}")
        else:
            misses.append(f"failure {s.failure!r} is not one of {_list(m.failures)}")
    if m.states and s.state.value not in m.states:
        misses.append(f"state {s.state.value!r} is not one of {_list(m.states)}")
    elif not m.states and s.state is AlertState.BLIND:
        misses.append("state 'blind' is matched only by a rule naming it in states")
    if m.for_ is not None and s.failing_for < m.for_:
        misses.append(f"failing for {_duration(s.failing_for)}, less than {_duration(m.for_)}")
    if m.time is not None and not m.time.contains(s.now):
        misses.append(f"{_local(s.now, m.time.timezone)} is outside {m.time.describe()}")
    return misses


def _burn_misses(m: RuleMatch, s: Situation) -> list[str]:
    """An SLO burn is matched by rules naming `burn_rate` (and their other fields but
    `states`, which are a check's); such rules match nothing else."""
    if s.burn_rate is None:
        return [f"burn_rate {_list(m.burn_rate)}: matches an SLO burning its budget only"]
    if not m.burn_rate:
        return ["an SLO burn is matched only by a rule naming burn_rate"]
    misses = []
    # `slow` means at least slow: a fast burn spends the budget faster still.
    wanted = set(m.burn_rate) | ({"fast"} if "slow" in m.burn_rate else set())
    if s.burn_rate not in wanted:
        misses.append(f"burning {s.burn_rate}, wants {_list(m.burn_rate)}")
    plain = RuleMatch(checks=m.checks, kinds=m.kinds, tags=m.tags, failures=m.failures,
                      for_=m.for_, time=m.time)  # fmt: skip
    down = Situation(s.check, s.kind, s.tags, s.failure, AlertState.DOWN, s.failing_for, s.now)
    return misses + _misses(plain, down)


def _effective(rule: SeverityRule, failing_for: timedelta) -> tuple[Severity | None, str]:
    """The rule's severity after `raise_after`, and how the trace says it."""
    base = _level(rule.severity)
    severity, raised_by = base, None
    for step in rule.raise_after:
        level = Severity(step.severity)
        if step.after <= failing_for and level.worse_than(severity):
            severity, raised_by = level, step
    text: str = rule.severity
    if raised_by is not None:
        text += f", raised to {raised_by.severity} after failing for {_duration(raised_by.after)}"
    if not rule.auto_resolve:
        text += " (resolved by hand)"
    return severity, text


def _list(values: Sequence[str]) -> str:
    return ", ".join(values)


def _duration(value: timedelta) -> str:
    # format_duration expects a non-negative value; a clock step back can make one.
    return "-" + format_duration(-value) if value < timedelta(0) else format_duration(value)


def _local(now: datetime, tz: str) -> str:
    try:
        local = as_utc(now).astimezone(zone(tz))
    except OverflowError:
        return f"time {now.isoformat()}"
    return f"time {WEEKDAYS[local.weekday()]} {local:%H:%M} {tz}"
