"""One `Retry-After` reading for checks, notifiers and the GitHub budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from monitor.checks.upstream import retry_after_s as check_retry_after
from monitor.core.retryafter import MAX_RETRY_AFTER_S, header, parse_retry_after, retry_after
from monitor.notifiers.base import http_error

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Sun, 22 Nov 2026 12:05:00 GMT", 300.0),
        ("Sun, 22 Nov 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("99999999", MAX_RETRY_AFTER_S),
    ],
)
def test_parse(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER", "rEtRy-AfTeR"])
def test_every_header_case_in_every_mapping(name: str) -> None:
    for headers in ({name: "30"}, CIMultiDict({name: "30"})):
        assert header(headers, "Retry-After") == "30"
        assert retry_after(headers, NOW) == 30.0
        assert check_retry_after(headers) == 30.0
        error = http_error("slack", 429, headers, "")
        assert error is not None
        assert error.retry_after_s == 30.0


def test_an_http_date_counts_from_the_servers_clock() -> None:
    headers = {
        "retry-after": "Sun, 22 Nov 2026 12:02:00 GMT",
        "date": "Sun, 22 Nov 2026 12:00:00 GMT",
    }
    assert retry_after(headers) == 120.0
    error = http_error("slack", 429, headers, "")
    assert error is not None
    assert error.retry_after_s == 120.0


@given(st.text(max_size=40))
def test_any_value_is_a_wait_or_none(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER_S
