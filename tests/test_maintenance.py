from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from monitor.core.model import Silence, Suppression, SuppressionKind
from monitor.incidents.maintenance import (
    MaintenanceWindow,
    active_window,
    silence_matches,
    suppression,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def mw(**fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "w", **fields})


def ends(window: MaintenanceWindow, now: str, check: str = "docs") -> datetime | None:
    found = active_window([window], check, frozenset({"docs"}), at(now))
    return None if found is None else found[1]


# Sample `maintenance:` list, as README and monitors.yaml show it.
SAMPLE_YAML = """
maintenance:
  # A planned migration: one-off, times with an offset (none means UTC).
  - name: registry-migration
    tags: [npm]
    start: 2026-11-22T02:00:00Z
    end: 2026-11-22T04:00:00Z
  # The docs site redeploys every Saturday night, Berlin time, for 3 hours.
  - name: docs-deploy
    checks: [docs, "docs-*"]
    weekdays: [sat]
    at: "23:00"
    duration: 3h
    timezone: Europe/Berlin
  # Nightly CI runner upgrades: every day (no weekdays), all ci-tagged checks.
  - name: nightly-runners
    tags: [ci]
    at: "04:00"
    duration: 30m
"""

SAMPLE = TypeAdapter(list[MaintenanceWindow]).validate_python(
    yaml.safe_load(SAMPLE_YAML)["maintenance"]
)


class TestActiveWindow:
    @pytest.mark.parametrize(
        ("window", "now", "end"),
        [
            # One-off: start included, end excluded.
            (
                {"start": "2026-11-22T02:00Z", "end": "2026-11-22T04:00Z"},
                "2026-11-22T01:59Z",
                None,
            ),
            (
                {"start": "2026-11-22T02:00Z", "end": "2026-11-22T04:00Z"},
                "2026-11-22T02:00Z",
                "2026-11-22T04:00Z",
            ),
            (
                {"start": "2026-11-22T02:00Z", "end": "2026-11-22T04:00Z"},
                "2026-11-22T04:00Z",
                None,
            ),
            # A naive one-off time is UTC; an offset is honoured.
            (
                {"start": "2026-11-22T02:00", "end": "2026-11-22T04:00+01:00"},
                "2026-11-22T02:30Z",
                "2026-11-22T03:00Z",
            ),
            # Daily (no weekdays).
            ({"at": "04:00", "duration": "30m"}, "2026-11-24T04:10Z", "2026-11-24T04:30Z"),
            ({"at": "04:00", "duration": "30m"}, "2026-11-24T04:30Z", None),
            ({"at": "04:00", "duration": "30m"}, "2026-11-24T03:59Z", None),
            # Daily, crossing midnight: yesterday's occurrence is still running.
            ({"at": "23:30", "duration": "1h"}, "2026-11-24T00:15Z", "2026-11-24T00:30Z"),
            ({"at": "23:30", "duration": "1h"}, "2026-11-23T23:45Z", "2026-11-24T00:30Z"),
            # Weekly: Sat 23:00 for 3h covers Sun 01:00 (2026-11-21 is a Saturday).
            (
                {"weekdays": ["sat"], "at": "23:00", "duration": "3h"},
                "2026-11-22T01:00Z",
                "2026-11-22T02:00Z",
            ),
            ({"weekdays": ["sat"], "at": "23:00", "duration": "3h"}, "2026-11-22T02:00Z", None),
            ({"weekdays": ["sun"], "at": "23:00", "duration": "3h"}, "2026-11-22T01:00Z", None),
            ({"weekdays": ["sat"], "at": "23:00", "duration": "3h"}, "2026-11-28T22:59Z", None),
            # Crossing the end of the week: Sunday night into Monday.
            (
                {"weekdays": ["sun"], "at": "22:00", "duration": "4h"},
                "2026-11-23T01:00Z",
                "2026-11-23T02:00Z",
            ),
            # Several days long, begun earlier in the week: Fri 18:00 for 3d.
            (
                {"weekdays": ["fri"], "at": "18:00", "duration": "3d"},
                "2026-11-23T17:59Z",
                "2026-11-23T18:00Z",
            ),
            # A daily window longer than a day: two occurrences overlap; the later ends last.
            ({"at": "12:00", "duration": "30h"}, "2026-11-24T13:00Z", "2026-11-25T18:00Z"),
            # Local time: 23:00 Berlin is 22:00 UTC in winter, 21:00 UTC in summer.
            (
                {"weekdays": ["sat"], "at": "23:00", "duration": "3h", "timezone": "Europe/Berlin"},
                "2026-11-21T22:00Z",
                "2026-11-22T01:00Z",
            ),
            (
                {"weekdays": ["sat"], "at": "23:00", "duration": "3h", "timezone": "Europe/Berlin"},
                "2026-11-21T21:59Z",
                None,
            ),
            (
                {"weekdays": ["sat"], "at": "23:00", "duration": "3h", "timezone": "Europe/Berlin"},
                "2026-07-04T21:00Z",
                "2026-07-05T00:00Z",
            ),
            # Saturday 22:00 in New York is already Sunday in UTC.
            (
                {
                    "weekdays": ["sat"],
                    "at": "22:00",
                    "duration": "1h",
                    "timezone": "America/New_York",
                },
                "2026-11-22T03:30Z",
                "2026-11-22T04:00Z",
            ),
        ],
    )
    def test_occurrences(self, window: dict[str, Any], now: str, end: str | None) -> None:
        assert ends(mw(**window), now) == (None if end is None else at(end))

    @pytest.mark.parametrize(
        ("window", "now", "end"),
        [
            # Berlin springs forward on 2026-03-29 at 02:00 CET → 03:00 CEST.
            # A daily 09:00 start follows the wall clock: 08:00 UTC before, 07:00 UTC on the day.
            (
                {"at": "09:00", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-03-28T08:00Z",
                "2026-03-28T09:00Z",
            ),
            (
                {"at": "09:00", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-03-29T07:00Z",
                "2026-03-29T08:00Z",
            ),
            (
                {"at": "09:00", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-03-29T08:00Z",
                None,
            ),
            # 02:30 does not exist that day: it is read with the winter offset, 01:30 UTC
            # (03:30 CEST on the wall clock), and still lasts one hour.
            (
                {"at": "02:30", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-03-29T01:29Z",
                None,
            ),
            (
                {"at": "02:30", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-03-29T01:30Z",
                "2026-03-29T02:30Z",
            ),
            # Berlin falls back on 2026-10-25 at 03:00 CEST → 02:00 CET: 02:30 happens
            # twice, and the window starts at the first (00:30 UTC), once.
            (
                {"at": "02:30", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-10-25T00:30Z",
                "2026-10-25T01:30Z",
            ),
            (
                {"at": "02:30", "duration": "1h", "timezone": "Europe/Berlin"},
                "2026-10-25T01:30Z",
                None,
            ),
            # The duration is elapsed time: 01:00 CEST + 3h ends at 03:00 CET.
            (
                {"at": "01:00", "duration": "3h", "timezone": "Europe/Berlin"},
                "2026-10-24T23:00Z",
                "2026-10-25T02:00Z",
            ),
            # New York: spring forward 2026-03-08 02:00 EST → 03:00 EDT.
            (
                {"at": "02:15", "duration": "30m", "timezone": "America/New_York"},
                "2026-03-08T07:15Z",
                "2026-03-08T07:45Z",
            ),
            (
                {"at": "06:00", "duration": "1h", "timezone": "America/New_York"},
                "2026-03-08T10:00Z",
                "2026-03-08T11:00Z",
            ),
            # ... and fall back 2026-11-01 02:00 EDT → 01:00 EST: 01:30 is the EDT one.
            (
                {"at": "01:30", "duration": "1h", "timezone": "America/New_York"},
                "2026-11-01T05:30Z",
                "2026-11-01T06:30Z",
            ),
            (
                {"at": "01:30", "duration": "1h", "timezone": "America/New_York"},
                "2026-11-01T06:30Z",
                None,
            ),
        ],
    )
    def test_dst(self, window: dict[str, Any], now: str, end: str | None) -> None:
        assert ends(mw(**window), now) == (None if end is None else at(end))

    @pytest.mark.parametrize(
        ("selector", "check", "tags", "expected"),
        [
            ({}, "anything", frozenset(), True),  # neither checks nor tags: every check
            ({"checks": ["docs"]}, "docs", frozenset(), True),
            ({"checks": ["docs-*"]}, "docs-api", frozenset(), True),
            ({"checks": ["docs-*"]}, "docs", frozenset(), False),
            ({"tags": ["npm"]}, "npm-winglang", frozenset({"npm", "install"}), True),
            ({"tags": ["npm"]}, "homepage", frozenset({"website"}), False),
            # checks and tags: either may match.
            ({"checks": ["docs"], "tags": ["npm"]}, "npm-winglang", frozenset({"npm"}), True),
            ({"checks": ["docs"], "tags": ["npm"]}, "docs", frozenset(), True),
            ({"checks": ["docs"], "tags": ["npm"]}, "homepage", frozenset({"website"}), False),
        ],
    )
    def test_per_check_and_tag(
        self, selector: dict[str, Any], check: str, tags: frozenset[str], expected: bool
    ) -> None:
        window = mw(at="00:00", duration="1h", **selector)
        found = active_window([window], check, tags, at("2026-11-22T00:30Z"))
        assert (found is not None) is expected

    def test_the_window_ending_last_wins(self) -> None:
        short = mw(name="short", at="00:00", duration="1h")
        long = mw(name="long", at="23:00", duration="3h")
        other = mw(name="other", checks=["homepage"], at="00:00", duration="9h")
        found = active_window([short, long, other], "docs", frozenset(), at("2026-11-22T00:30Z"))
        assert found == (long, at("2026-11-22T02:00Z"))

    @pytest.mark.parametrize(
        ("check", "tags", "now", "expected"),
        [
            ("npm-winglang", {"npm"}, "2026-11-22T03:00Z", ("registry-migration", "04:00")),
            ("docs", {"docs"}, "2026-11-22T00:30Z", ("docs-deploy", "01:00")),
            ("docs-api", set(), "2026-11-21T22:00Z", ("docs-deploy", "01:00")),
            ("main-build", {"ci"}, "2026-11-22T04:10Z", ("nightly-runners", "04:30")),
            ("homepage", {"website"}, "2026-11-22T00:30Z", None),
        ],
    )
    def test_sample(
        self, check: str, tags: set[str], now: str, expected: tuple[str, str] | None
    ) -> None:
        found = active_window(SAMPLE, check, frozenset(tags), at(now))
        got = None if found is None else (found[0].name, f"{found[1]:%H:%M}")
        assert got == expected


def errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        MaintenanceWindow.model_validate({"name": "w", **data})
    return "\n".join(f"{e['loc']}: {e['msg']}" for e in info.value.errors())


class TestValidation:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (
                {
                    "start": "2026-11-22T02:00Z",
                    "end": "2026-11-22T04:00Z",
                    "at": "02:00",
                    "duration": "2h",
                },
                "give either start and end (a one-off window) or at and duration "
                "(a recurring window), not both",
            ),
            ({"start": "2026-11-22T02:00Z", "weekdays": ["sat"]}, "not both"),
            (
                {},
                "give start and end (a one-off window) or at and duration (a recurring window, "
                "with optional weekdays)",
            ),
            ({"start": "2026-11-22T02:00Z"}, "a one-off window needs both start and end"),
            ({"end": "2026-11-22T02:00Z"}, "a one-off window needs both start and end"),
            (
                {"start": "2026-11-22T02:00Z", "end": "2026-11-22T02:00Z"},
                "end 2026-11-22T02:00:00+00:00 must be after start 2026-11-22T02:00:00+00:00",
            ),
            ({"at": "02:00"}, "a recurring window needs both at (HH:MM) and duration"),
            ({"duration": "1h", "weekdays": ["sun"]}, "needs both at (HH:MM) and duration"),
            (
                {"at": "02:00", "duration": "7d"},
                "duration 7d is too long: a recurring window must be shorter than 7d",
            ),
            ({"at": "2am", "duration": "1h"}, "('at',): Value error, invalid time '2am'"),
            ({"at": "02:00", "duration": "0s"}, "('duration',): Input should be greater than"),
            (
                {"at": "02:00", "duration": "1h", "timezone": "Mars/Olympus"},
                "('timezone',): Value error, unknown time zone 'Mars/Olympus'",
            ),
            ({"at": "02:00", "duration": "1h", "weekdays": ["Sat"]}, "Input should be 'mon'"),
            ({"at": "02:00", "duration": "1h", "check": ["x"]}, "Extra inputs are not permitted"),
        ],
    )
    def test_errors(self, data: dict[str, Any], message: str) -> None:
        assert message in errors(data)

    def test_name_required(self) -> None:
        with pytest.raises(ValidationError, match="name"):
            MaintenanceWindow.model_validate({"at": "02:00", "duration": "1h"})

    def test_naive_times_become_utc(self) -> None:
        window = mw(start="2026-11-22T02:00:00", end=datetime(2026, 11, 22, 4, 0))  # noqa: DTZ001  # naive on purpose
        assert window.start == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        assert window.end == datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


T0 = at("2026-11-22T12:00Z")


def silence(
    matchers: Mapping[str, tuple[str, ...]],
    sid: int = 3,
    ends: str = "2026-11-22T18:00Z",
    starts: str = "2026-11-22T10:00Z",
    expired: str | None = None,
    author: str = "alice",
    comment: str = "upgrading the registry mirror",
) -> Silence:
    return Silence(
        id=sid,
        matchers=matchers,
        starts_at=at(starts),
        ends_at=at(ends),
        author=author,
        comment=comment,
        created_at=at(starts),
        expired_at=None if expired is None else at(expired),
    )


class TestSilences:
    @pytest.mark.parametrize(
        ("matchers", "expected"),
        [
            ({}, False),  # no matchers: matches nothing, never everything
            ({"checks": ()}, False),  # only empty matchers: the same
            ({"checks": ("npm-winglang",)}, True),
            ({"checks": ("npm-*",)}, True),
            ({"checks": ("docs", "npm-*")}, True),  # any value within a key
            ({"checks": ("docs",)}, False),
            ({"kinds": ("npm",)}, True),
            ({"kinds": ("http",)}, False),
            ({"tags": ("install", "docs")}, True),
            ({"tags": ("docs",)}, False),
            ({"checks": ("npm-*",), "kinds": ("npm",), "tags": ("install",)}, True),
            ({"checks": ("npm-*",), "kinds": ("http",)}, False),  # every key must match
            ({"checks": ("npm-*",), "tags": ("docs",)}, False),
            ({"checks": ("npm-*",), "kinds": ()}, True),  # an empty key is not given
            ({"checks": ("npm-*",), "severity": ("P2",)}, False),  # unknown key: nothing
        ],
    )
    def test_matches(self, matchers: Mapping[str, tuple[str, ...]], expected: bool) -> None:
        s = silence(matchers)
        assert silence_matches(s, "npm-winglang", "npm", frozenset({"npm", "install"})) is expected


class TestSuppression:
    WINDOW = mw(name="docs-deploy", checks=["docs"], at="02:00", duration="2h")

    @pytest.mark.parametrize(
        ("check", "silences", "now", "expected"),
        [
            ("homepage", [], T0, None),
            (
                "docs",
                [silence({"checks": ("*",)})],
                at("2026-11-22T03:00Z"),
                "maintenance 'docs-deploy' until 2026-11-22 04:00 UTC",  # maintenance wins
            ),
            (
                "docs",
                [silence({"checks": ("docs",)})],
                T0,
                "silence #3 by alice until 2026-11-22 18:00 UTC: upgrading the registry mirror",
            ),
            ("docs", [silence({"checks": ("docs",)})], at("2026-11-22T09:59Z"), None),  # not yet
            ("docs", [silence({"checks": ("docs",)})], at("2026-11-22T18:00Z"), None),  # over
            (
                "docs",
                [silence({"checks": ("docs",)}, expired="2026-11-22T11:00Z")],
                T0,
                None,  # expired early by a person
            ),
            (
                "docs",
                [silence({"checks": ("docs",)}, expired="2026-11-22T13:00Z")],
                T0,
                "silence #3 by alice until 2026-11-22 13:00 UTC: upgrading the registry mirror",
            ),
            ("docs", [silence({"checks": ("homepage",)})], T0, None),
            ("docs", [silence({})], T0, None),
            (
                "docs",
                [silence({"checks": ("docs",)}, comment="")],
                T0,
                "silence #3 by alice until 2026-11-22 18:00 UTC",
            ),
            (
                "docs",
                [
                    silence({"tags": ("docs",)}, sid=1, author="bob", comment="a"),
                    silence({"checks": ("d*",)}, sid=2, ends="2026-11-23T08:30+01:00", comment="b"),
                    silence({"checks": ("docs",)}, sid=4, ends="2026-11-22T20:00Z", comment="c"),
                ],
                T0,
                "silence #2 by alice until 2026-11-23 07:30 UTC: b",  # the one that ends last
            ),
        ],
    )
    def test_reason(
        self, check: str, silences: list[Silence], now: datetime, expected: str | None
    ) -> None:
        got = suppression([self.WINDOW], silences, check, "http", frozenset({"docs"}), now)
        assert (got.text if got else None) == expected

    def test_sample_windows(self) -> None:
        got = suppression(
            SAMPLE, [], "docs", "http", frozenset({"docs"}), at("2026-11-22T00:30+01:00")
        )
        assert got == Suppression(
            SuppressionKind.MAINTENANCE, "maintenance 'docs-deploy' until 2026-11-22 01:00 UTC"
        )

    def test_recurring_end_is_reported_in_utc(self) -> None:
        window = mw(name="nightly", at="23:00", duration="3h", timezone="America/New_York")
        got = suppression([window], [], "x", "http", frozenset(), at("2026-11-22T05:00Z"))
        assert got is not None
        assert got.text == "maintenance 'nightly' until 2026-11-22 07:00 UTC"


def test_sunday_night_window_runs_once_a_week() -> None:
    window = mw(weekdays=["sun"], at="22:00", duration="4h")
    # Sunday 2026-11-15 22:00 → Monday 02:00; nothing on the following Sunday morning.
    assert ends(window, "2026-11-22T01:00Z") is None
    assert ends(window, "2026-11-16T01:59Z") == at("2026-11-16T02:00Z")
    assert ends(window, "2026-11-16T02:00Z") is None


def test_duration_just_under_a_week() -> None:
    window = mw(weekdays=["mon"], at="00:00", duration="6d23h59m")
    assert ends(window, "2026-11-29T23:58Z") == at("2026-11-29T23:59Z")
    assert ends(window, "2026-11-29T23:59Z") is None
    assert ends(window, "2026-11-30T00:00Z") == at("2026-12-06T23:59Z")


def test_timedelta_duration_accepted() -> None:
    window = MaintenanceWindow(name="w", at="01:00", duration=timedelta(hours=1))
    assert ends(window, "2026-11-22T01:30Z") == at("2026-11-22T02:00Z")


def test_occurrence_begun_seven_local_days_ago() -> None:
    # Mon 12:00 for 6d23h: the next Monday at 10:59 still belongs to last week's window.
    window = mw(weekdays=["mon"], at="12:00", duration="6d23h")
    assert ends(window, "2026-11-30T10:59Z") == at("2026-11-30T11:00Z")
    assert ends(window, "2026-11-30T11:00Z") is None
