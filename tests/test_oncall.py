"""Who is on call: windows, handoffs, overrides, gaps, DST. Explicit times, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from monitor.paging.oncall import OnCallConfig, coverage_gaps, format_coverage, handoffs, on_call

# The Wing rotations (operations overview): Israel/Europe 03:00-15:00 UTC, US 15:00-03:00 UTC.
WING = yaml.safe_load("""
people: [{name: eladb}, {name: staycoolcall911}, {name: ainvoner}, {name: MarkMcCulloh}, {name: Chriscbr}, {name: hasanaburayyan}, {name: skyrpex}]
rotations:
  - {name: europe, window: "03:00-15:00", members: [eladb, staycoolcall911, ainvoner], handoff: {every: week, weekday: mon, at: "03:00"}, start: 2026-11-02}
  - {name: us, window: "15:00-03:00", members: [MarkMcCulloh, Chriscbr, hasanaburayyan], handoff: {every: week, weekday: mon, at: "15:00"}, start: 2026-11-02}
""")


def config(**changes: Any) -> OnCallConfig:
    return OnCallConfig.model_validate({**WING, **changes})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "rotation", "primary", "secondary"),
    [
        ("2026-11-02 03:00", "europe", "eladb", "staycoolcall911"),  # the first shift starts
        ("2026-11-02 14:59", "europe", "eladb", "staycoolcall911"),
        ("2026-11-02 15:00", "us", "MarkMcCulloh", "Chriscbr"),
        ("2026-11-03 02:59", "us", "MarkMcCulloh", "Chriscbr"),  # across midnight
        ("2026-11-08 23:00", "us", "MarkMcCulloh", "Chriscbr"),  # Sunday night
        (
            "2026-11-09 02:00",
            "us",
            "MarkMcCulloh",
            "Chriscbr",
        ),  # Sunday's window, before Monday's handoff
        ("2026-11-09 03:00", "europe", "staycoolcall911", "ainvoner"),  # weekly handoff
        ("2026-11-09 15:00", "us", "Chriscbr", "hasanaburayyan"),
        ("2026-11-23 03:00", "europe", "eladb", "staycoolcall911"),  # wrapped around
        ("2026-11-23 16:00", "us", "MarkMcCulloh", "Chriscbr"),
    ],
)
def test_wing_rotations(when: str, rotation: str, primary: str, secondary: str) -> None:
    now = on_call(config(), at(when))
    assert (now.rotation, now.primary and now.primary.name, now.secondary and now.secondary.name) == (
        rotation, primary, secondary,
    )  # fmt: skip


def test_until_says_when_it_changes() -> None:
    assert on_call(config(), at("2026-11-02 10:00")).until == at("2026-11-02 15:00")


def test_the_wing_schedule_covers_24x7() -> None:
    assert coverage_gaps(config(), at("2026-11-02 00:00"), at("2026-12-02 00:00")) == []
    text, gap = format_coverage(config(), at("2026-11-02 03:00"), 4)
    assert (text, gap) == ("24x7 covered for 4 week(s) from 2026-11-02 03:00 UTC", False)


def test_gaps_are_exact() -> None:
    day_only = config(rotations=[WING["rotations"][0]])
    assert coverage_gaps(day_only, at("2026-11-03 00:00"), at("2026-11-04 00:00")) == [
        (at("2026-11-03 00:00"), at("2026-11-03 03:00")),
        (at("2026-11-03 15:00"), at("2026-11-04 00:00")),
    ]
    text, gap = format_coverage(day_only, at("2026-11-03 00:00"), 1)
    assert gap
    assert text.splitlines()[0] == "8 gap(s) in on-call coverage:"


@pytest.mark.parametrize(
    ("override", "when", "primary", "secondary"),
    [
        ({"person": "skyrpex", "start": "2026-11-02T12:00:00Z", "end": "2026-11-02T20:00:00Z"},
         "2026-11-02 13:00", "skyrpex", "staycoolcall911"),
        ({"person": "skyrpex", "start": "2026-11-02T12:00:00Z", "end": "2026-11-02T20:00:00Z"},
         "2026-11-02 16:00", "skyrpex", "Chriscbr"),  # no rotation named: whichever is active
        ({"person": "skyrpex", "rotation": "us", "start": "2026-11-02T12:00:00Z", "end": "2026-11-02T20:00:00Z"},
         "2026-11-02 13:00", "eladb", "staycoolcall911"),  # covers only the us window
        ({"person": "skyrpex", "as": "secondary", "start": "2026-11-02T12:00:00Z", "end": "2026-11-02T20:00:00Z"},
         "2026-11-02 13:00", "eladb", "skyrpex"),
    ],
)  # fmt: skip
def test_overrides(override: dict[str, str], when: str, primary: str, secondary: str) -> None:
    now = on_call(config(overrides=[override]), at(when))
    assert (now.primary and now.primary.name, now.secondary and now.secondary.name) == (
        primary,
        secondary,
    )


def test_handoffs_are_listed() -> None:
    found = handoffs(config(), at("2026-11-08 12:00"), at("2026-11-09 16:00"))
    assert found == [
        (at("2026-11-08 15:00"), "us"),
        (at("2026-11-09 03:00"), "europe"),
        (at("2026-11-09 15:00"), "us"),
    ]


def test_daily_handoff_and_single_member() -> None:
    cfg = OnCallConfig.model_validate({
        "people": [{"name": "a"}, {"name": "b"}],
        "rotations": [{"name": "all", "window": "00:00-00:00", "members": ["a", "b"],
                       "handoff": {"every": "day", "at": "09:00"}, "start": "2026-11-02"},
                      {"name": "solo", "window": "00:00-00:00", "members": ["a"], "start": "2026-11-02"}],
    })  # fmt: skip
    # the first member is primary until the first handoff
    assert on_call(cfg, at("2026-11-02 08:59")).primary.name == "a"  # type: ignore[union-attr]
    assert on_call(cfg, at("2026-11-02 09:00")).primary.name == "a"  # type: ignore[union-attr]
    assert on_call(cfg, at("2026-11-03 09:00")).primary.name == "b"  # type: ignore[union-attr]
    assert on_call(cfg, at("2026-11-04 09:00")).primary.name == "a"  # type: ignore[union-attr]


def test_windows_follow_local_time_across_dst() -> None:
    cfg = OnCallConfig.model_validate({
        "people": [{"name": "a"}],
        "rotations": [{"name": "berlin", "window": "03:00-15:00", "timezone": "Europe/Berlin",
                       "members": ["a"], "start": "2026-01-05"}],
    })  # fmt: skip
    # Winter: UTC+1, the window is 02:00-14:00 UTC. Summer: UTC+2, 01:00-13:00 UTC.
    assert on_call(cfg, at("2026-01-15 02:00")).rotation == "berlin"
    assert on_call(cfg, at("2026-01-15 01:59")).rotation is None
    assert on_call(cfg, at("2026-07-15 01:00")).rotation == "berlin"
    assert on_call(cfg, at("2026-07-15 13:00")).rotation is None
    # The night of the spring change (2026-03-29) is one hour shorter.
    gaps = coverage_gaps(cfg, at("2026-03-28 12:00"), at("2026-03-29 12:00"))
    assert gaps == [(at("2026-03-28 14:00"), at("2026-03-29 01:00"))]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"people": [{"name": "a"}, {"name": "a"}]}, "duplicate person name(s): a"),
        (
            {"rotations": [{"name": "r", "members": ["ghost"], "start": "2026-01-01"}]},
            "unknown member(s) ghost",
        ),
        (
            {
                "overrides": [
                    {
                        "person": "ghost",
                        "start": "2026-01-01T00:00:00Z",
                        "end": "2026-01-02T00:00:00Z",
                    }
                ]
            },
            "unknown person 'ghost'",
        ),
        (
            {
                "overrides": [
                    {
                        "person": "eladb",
                        "start": "2026-01-02T00:00:00Z",
                        "end": "2026-01-01T00:00:00Z",
                    }
                ]
            },
            "must end after it starts",
        ),
        (
            {
                "rotations": [
                    {"name": "r", "window": "9-5", "members": ["eladb"], "start": "2026-01-01"}
                ]
            },
            "invalid time",
        ),
        (
            {
                "rotations": [
                    {
                        "name": "r",
                        "timezone": "Mars/Olympus",
                        "members": ["eladb"],
                        "start": "2026-01-01",
                    }
                ]
            },
            "Mars/Olympus",
        ),
    ],
)
def test_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**change)


@pytest.mark.parametrize("window", ["00:00-24:00", "00:00-00:00"])
def test_an_all_day_window(window: str) -> None:
    cfg = OnCallConfig.model_validate({
        "people": [{"name": "a"}, {"name": "b"}],
        "rotations": [{"name": "all", "window": window, "members": ["a", "b"], "start": "2026-11-02",
                       "timezone": "Europe/Berlin"}],
    })  # fmt: skip
    for when in ("2026-11-03 00:00", "2026-11-03 12:00", "2026-11-03 22:59", "2026-11-03 23:00"):
        assert on_call(cfg, at(when)).rotation == "all", when
    assert coverage_gaps(cfg, at("2026-11-02 00:00"), at("2026-11-16 00:00")) == []


def test_a_window_may_end_at_24_00_not_start_there() -> None:
    cfg = OnCallConfig.model_validate({
        "people": [{"name": "a"}],
        "rotations": [{"name": "evening", "window": "18:00-24:00", "members": ["a"], "start": "2026-11-02"}],
    })  # fmt: skip
    assert on_call(cfg, at("2026-11-03 23:59")).rotation == "evening"
    assert on_call(cfg, at("2026-11-04 00:00")).rotation is None
    with pytest.raises(ValidationError, match="invalid time"):
        OnCallConfig.model_validate({
            "people": [{"name": "a"}],
            "rotations": [{"name": "r", "window": "24:00-08:00", "members": ["a"], "start": "2026-11-02"}],
        })  # fmt: skip
