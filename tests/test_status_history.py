"""The status page's history: the summaries kept in memory (UTC days, blind runs, partial
data, refreshes), and what the main page and an asset page show of them, parsed."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import Defaults, GroupConfig
from monitor.core.errors import StoreError
from monitor.core.model import (
    CheckResult,
    FailureKind,
    Incident,
    IncidentStatus,
    Outcome,
    Severity,
)
from monitor.engine.history import HistoryView
from monitor.engine.summary import DAYS, HOURS, READ_AT_ONCE, Summaries
from monitor.store.base import HOUR, LATENCY_BOUNDS_MS, MINUTE, HistoryBucket
from monitor.web.api import build_app
from monitor.web.status import PAGE_CSP, PageQuery, StatusView, render_asset, render_html
from tests.fakes import FakeClock, MemoryStore

DAY = 24 * HOUR
MIDNIGHT = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, 00:00 UTC


def ts(when: datetime) -> int:
    return int(when.timestamp())


def runs(check: str, at: datetime, *, up: int = 0, degraded: int = 0, down: int = 0,
         blind: int = 0, ms: float = 80.0) -> HistoryBucket:  # fmt: skip
    """One minute of runs, as the history writer stores it (all timed at `ms`)."""
    timed = up + degraded + down
    latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    latency[sum(1 for b in LATENCY_BOUNDS_MS if b < ms)] = timed
    start = ts(at) - ts(at) % MINUTE
    return HistoryBucket(check, MINUTE, start, up, degraded, down, blind, ms * timed,
                         ms if timed else 0.0, tuple(latency))  # fmt: skip


class CountingStore(MemoryStore):
    """A MemoryStore that records each history read, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int, int]] = []  # hour rows
        self.totals: list[tuple[str, int, int]] = []  # days added up
        self.failing = self.inner = False

    async def read_history(
        self, check: str, resolution: int, since: int, until: int
    ) -> list[HistoryBucket]:
        if self.failing:
            raise StoreError("database is locked")
        if not self.inner:
            self.reads.append((check, since, until))
        return await super().read_history(check, resolution, since, until)

    async def read_history_totals(
        self, check: str, size: int, since: int, until: int
    ) -> list[HistoryBucket]:
        if self.failing:
            raise StoreError("database is locked")
        self.totals.append((check, since, until))
        self.inner = True
        try:
            return await super().read_history_totals(check, size, since, until)
        finally:
            self.inner = False


# --- summaries -------------------------------------------------------------------------


async def test_no_history_gives_no_figures() -> None:
    clock = FakeClock(MIDNIGHT + timedelta(hours=12))
    summaries = Summaries(MemoryStore(), clock, lambda: ["docs"])
    assert summaries.refreshed_at is None
    await summaries.refresh()
    s = summaries.get("docs")
    assert s is not None
    assert s.uptime() == {"24h": None, "7d": None, "30d": None, "90d": None}
    days = s.day_list()
    assert len(days) == DAYS
    assert {d.status for d in days} == {"empty"}
    assert days[-1].start == ts(MIDNIGHT)
    assert days[0].start == ts(MIDNIGHT) - (DAYS - 1) * DAY
    hours = s.hour_list()
    assert len(hours) == HOURS
    assert hours[-1].start == ts(MIDNIGHT + timedelta(hours=12))
    assert all(h.p50 is None and h.looked == 0 for h in hours)


async def test_days_are_utc_days() -> None:
    store = MemoryStore()
    await store.add_history([
        runs("docs", MIDNIGHT - timedelta(minutes=50), up=10, ms=80),  # Sunday 23:10
        runs("docs", MIDNIGHT + timedelta(minutes=5), down=10, ms=300),  # Monday 00:05
    ])  # fmt: skip
    clock = FakeClock(MIDNIGHT + timedelta(minutes=30))
    summaries = Summaries(store, clock, lambda: ["docs"])
    await summaries.refresh()
    s = summaries.get("docs")
    assert s is not None
    *_, sunday, monday = s.day_list()
    assert (sunday.start, sunday.ok, sunday.looked, sunday.status) == (
        ts(MIDNIGHT) - DAY,
        10,
        10,
        "up",
    )
    assert (monday.start, monday.down, monday.uptime, monday.status) == (
        ts(MIDNIGHT),
        10,
        0.0,
        "down",
    )
    assert (sunday.p50, monday.p95) == (80.0, 300.0)
    assert s.uptime() == {"24h": 50.0, "7d": 50.0, "30d": 50.0, "90d": 50.0}
    *_, eleven, midnight = s.hour_list()
    assert (eleven.ok, eleven.looked, midnight.ok, midnight.looked) == (10, 10, 0, 10)


async def test_blind_runs_say_nothing_about_the_asset() -> None:
    store = MemoryStore()
    day = MIDNIGHT - 3 * timedelta(days=1)
    await store.add_history([
        runs("docs", day + timedelta(hours=1), up=9, down=1, blind=90),
        runs("docs", day + timedelta(days=1, hours=2), blind=5),
        runs("docs", day + timedelta(days=2, hours=3), up=199, down=1),
    ])  # fmt: skip
    clock = FakeClock(MIDNIGHT + timedelta(hours=6))
    summaries = Summaries(store, clock, lambda: ["docs"])
    await summaries.refresh()
    s = summaries.get("docs")
    assert s is not None
    *_, first, blind, flaky, today = s.day_list()
    assert (first.uptime, first.looked, first.blind, first.status) == (90.0, 10, 90, "down")
    assert (blind.uptime, blind.status) == (None, "blind")
    assert (flaky.uptime, flaky.status) == (99.5, "degraded")  # down a while, 99 % or more
    assert (today.uptime, today.status) == (None, "empty")
    assert s.uptime()["7d"] == round(100 * 208 / 210, 3)
    assert s.uptime()["24h"] is None  # nothing in the last 24 hours


async def test_partial_history_and_the_24h_figure_the_api_gives() -> None:
    store = MemoryStore()
    now = MIDNIGHT + timedelta(hours=15, minutes=20)
    buckets = []
    for h in range(3 * 24):  # three days of runs, one down an hour in the last 24 hours
        at = now - timedelta(hours=h)
        buckets.append(runs("docs", at, up=59, down=1 if h < 24 else 0, ms=120))
    await store.add_history(buckets)
    clock = FakeClock(now)
    summaries = Summaries(store, clock, lambda: ["docs"])
    await summaries.refresh()
    s = summaries.get("docs")
    assert s is not None
    figures = await HistoryView(store, clock).figures("docs", "24h")
    assert s.uptime()["24h"] == figures["uptime_percent"]["24h"] == round(100 * 59 / 60, 3)
    # Days before the history are empty and do not count.
    days = s.day_list()
    assert [d.status for d in days[:-4]] == ["empty"] * (DAYS - 4)
    looked = sum(d.looked for d in days)
    ok = sum(d.ok for d in days)
    assert (looked, s.uptime()["90d"]) == (48 * 59 + 24 * 60, round(100 * ok / looked, 3))
    assert s.uptime()["90d"] == s.uptime()["30d"] == s.uptime()["7d"]
    assert [h.p50 for h in s.hour_list()] == [120.0] * HOURS


async def test_a_refresh_reads_what_changed_and_follows_the_day() -> None:
    store = CountingStore()
    start = MIDNIGHT + timedelta(hours=23, minutes=58)
    await store.add_history([runs("docs", start - timedelta(days=40), up=5),
                             runs("docs", start, down=2)])  # fmt: skip
    clock = FakeClock(start)
    summaries = Summaries(store, clock, lambda: ["docs"])
    await summaries.refresh()
    hour0 = ts(MIDNIGHT) + 23 * HOUR
    # The first read: 90 days, added up by the store; and the last 24 hour rows.
    assert store.totals == [("docs", ts(MIDNIGHT) - (DAYS - 1) * DAY, ts(MIDNIGHT) + DAY)]
    assert store.reads == [("docs", hour0 - (HOURS - 1) * HOUR, hour0 + HOUR)]
    await store.add_history([runs("docs", start + timedelta(minutes=1), up=3)])
    await clock.advance(3 * 60)  # past midnight: Tuesday 00:01
    store.totals.clear()
    store.reads.clear()
    await summaries.refresh()
    # Monday again (its last hour may have changed), not 90 days; the hours from an hour
    # before the last refresh, not 24.
    assert store.totals == [("docs", ts(MIDNIGHT), ts(MIDNIGHT) + 2 * DAY)]
    assert store.reads == [("docs", hour0 - HOUR, hour0 + 2 * HOUR)]
    s = summaries.get("docs")
    assert s is not None
    *_, forty, _, monday, tuesday = s.day_list()[-42:][:1] + s.day_list()[-3:]
    assert (forty.start, forty.ok) == (ts(MIDNIGHT) - 40 * DAY, 5)
    assert (monday.start, monday.ok, monday.down) == (ts(MIDNIGHT), 3, 2)
    assert (tuesday.start, tuesday.looked, tuesday.status) == (ts(MIDNIGHT) + DAY, 0, "empty")
    assert s.hour_list()[-1].start == ts(MIDNIGHT) + DAY
    assert [(h.ok, h.looked) for h in s.hour_list()[-2:]] == [(3, 5), (0, 0)]
    # Two hours into the day, a refresh reads today only.
    await clock.advance(2 * HOUR)
    await summaries.refresh()
    await clock.advance(60)
    store.totals.clear()
    await summaries.refresh()
    assert store.totals == [("docs", ts(MIDNIGHT) + DAY, ts(MIDNIGHT) + 2 * DAY)]
    # Days later, every day has moved along.
    await clock.advance(3 * DAY)
    await summaries.refresh()
    days = summaries.get("docs").day_list()  # type: ignore[union-attr]
    assert (days[-5].start, days[-5].ok, days[-5].down) == (ts(MIDNIGHT), 3, 2)
    assert (days[-45].start, days[-45].ok) == (ts(MIDNIGHT) - 40 * DAY, 5)


async def test_many_checks_are_read_a_chunk_at_a_time(clock: FakeClock) -> None:
    """Two store calls per `READ_AT_ONCE` checks, not two per check; a new check joins
    with its own, longer window."""
    calls: list[tuple[str, int, int]] = []

    class Chunked(MemoryStore):
        async def read_history_of(self, checks, resolution, since, until):
            calls.append(("hours", len(checks), since))
            return await super().read_history_of(checks, resolution, since, until)

        async def read_history_totals_of(self, checks, size, since, until):
            calls.append(("days", len(checks), since))
            return await super().read_history_totals_of(checks, size, since, until)

    store = Chunked()
    names = [f"c{i:04d}" for i in range(READ_AT_ONCE * 2 + 7)]
    await store.add_history([runs(n, clock.now() - timedelta(hours=2), up=i % 5 + 1)
                             for i, n in enumerate(names)])  # fmt: skip
    summaries = Summaries(store, clock, lambda: names)
    await summaries.refresh()
    assert sorted(c[:2] for c in calls) == sorted(
        [(kind, n) for kind in ("days", "hours") for n in (READ_AT_ONCE, READ_AT_ONCE, 7)]
    )
    for i, name in enumerate(names):  # each check has its own figures
        [hour] = [h for h in summaries.get(name).hour_list() if h.looked]  # type: ignore[union-attr]
        assert hour.ok == i % 5 + 1
    calls.clear()
    names.append("new")
    await clock.advance(60)
    await summaries.refresh()
    firsts = {since for kind, _, since in calls if kind == "hours"}
    assert len(firsts) == 2  # the known checks from an hour ago, the new one from 24 h
    assert sum(n for kind, n, _ in calls if kind == "hours") == len(names)


async def test_a_store_that_fails_keeps_the_figures_and_a_check_gone_is_forgotten(
    clock: FakeClock,
) -> None:
    store = CountingStore()
    await store.add_history([runs("docs", clock.now() - timedelta(hours=1), up=4)])
    names = ["docs", "website"]
    summaries = Summaries(store, clock, lambda: names)
    await summaries.refresh()
    store.failing = True
    await clock.advance(60)
    await summaries.refresh()  # no exception: the figures stay
    assert summaries.get("docs").uptime()["24h"] == 100.0  # type: ignore[union-attr]
    store.failing = False
    names.remove("website")
    await summaries.refresh()
    assert summaries.get("website") is None
    assert set(summaries.by_check) == {"docs"}


async def test_resolved_incidents_of_90_days_are_kept(clock: FakeClock) -> None:
    store = MemoryStore()
    now = clock.now()
    old = incident(1, "docs", now - timedelta(days=95), timedelta(hours=1))
    recent = incident(2, "docs", now - timedelta(days=3), timedelta(hours=2))
    for i in (old, recent):
        await store.create_incident(i, [])
    summaries = Summaries(store, clock, lambda: ["docs"])
    await summaries.refresh()
    assert [i.id for i in summaries.resolved] == [2]


# --- pages -----------------------------------------------------------------------------


def incident(ident: int, check: str, opened: datetime, lasted: timedelta | None, *,
             note: str | None = None, severity: Severity = Severity.P1) -> Incident:  # fmt: skip
    return Incident(
        id=ident, key=check, title=f"{check} is down", severity=severity,
        status=IncidentStatus.RESOLVED if lasted else IncidentStatus.TRIGGERED,
        opened_at=opened, updated_at=opened + (lasted or timedelta(0)), check=check,
        resolved_at=opened + lasted if lasted else None,
        message="expected 2xx from https://internal.example/admin INTERNAL-DETAIL",
        public_note=note,
    )  # fmt: skip


def config(name: str, **fields: object) -> HttpCheckConfig:
    return HttpCheckConfig(name=name, kind="http", url=f"https://{name}.test/",
                           **fields).resolved(Defaults())  # fmt: skip


class Readings:
    """Alert states by name; None: not checked yet."""

    def __init__(self, clock: FakeClock, states: dict[str, AlertState]) -> None:
        self.clock, self.states = clock, states

    def state(self, check: str) -> CheckState | None:
        s = self.states.get(check)
        return CheckState(s, self.clock.now() - timedelta(minutes=5)) if s else None

    def last_result(self, check: str) -> CheckResult | None:
        s = self.states.get(check)
        if s is None:
            return None
        outcome = Outcome.DOWN if s is AlertState.DOWN else Outcome.UP
        failure = FailureKind.HTTP_STATUS if s is AlertState.DOWN else None
        message = "expected status 2xx, got 503" if failure else "200 OK"
        return CheckResult(check, "http", outcome, failure, message, self.clock.now(), 0.05)

    def recent_runs(self, check: str) -> list[dict[str, object]]:
        return []


CHECKS = [
    config("npm-a", tags=["npm"]), config("npm-b", tags=["npm"]),
    config("website", group="web", description="winglang.io"),
    config("docs", group="web", description="the <docs> site"),
    config("lonely"),
]  # fmt: skip
STATES = {"npm-a": AlertState.UP, "npm-b": AlertState.UP, "website": AlertState.UP,
          "docs": AlertState.DOWN, "lonely": AlertState.DEGRADED}  # fmt: skip


@pytest.fixture
async def view(clock: FakeClock) -> StatusView:
    store = MemoryStore()
    now = clock.now()
    buckets = []
    for d in range(10):
        day = now - timedelta(days=d)
        buckets.append(runs("docs", day, up=99 if d != 2 else 50, down=1 if d != 2 else 50,
                            ms=300))  # fmt: skip
        buckets.append(runs("website", day, up=100, ms=90))
    await store.add_history(buckets)
    await store.create_incident(
        incident(1, "docs", now - timedelta(days=2), timedelta(hours=2),
                 note="Docs were slow <b>for two hours</b>; fixed upstream.", severity=Severity.P2),
        [],
    )  # fmt: skip
    await store.create_incident(incident(2, "website", now - timedelta(days=5),
                                         timedelta(minutes=30)), [])  # fmt: skip
    summaries = Summaries(store, clock, lambda: [c.name for c in CHECKS])
    await summaries.refresh()
    return StatusView(
        "Wing <assets>", clock, lambda: CHECKS, Readings(clock, STATES), None,
        summaries=summaries, groups=lambda: {"web": GroupConfig(description="the sites")},
    )  # fmt: skip


def names(doc: dict[str, object]) -> list[tuple[str, list[str]]]:
    return [(g["name"], [a["name"] for a in g["assets"]]) for g in doc["groups"]]  # type: ignore[attr-defined]


def test_groups_failing_first_and_failing_checks_first(view: StatusView) -> None:
    doc = view.page()
    assert names(doc) == [("web", ["docs", "website"]), ("other", ["lonely"]),
                          ("npm", ["npm-a", "npm-b"])]  # fmt: skip
    assert doc["summary"] == {"down": 1, "degraded": 1, "blind": 0, "unknown": 0, "up": 3}
    page = Page(render_html(doc))
    assert page.attrs("tr.group", "data-group") == ["web", "other", "npm"]
    assert page.text("tr.group")[0].startswith("web the sites · 1 failing of 2")


def test_pages_and_their_links(view: StatusView) -> None:
    first = view.page(PageQuery(per_page=2))
    assert (first["page"], first["pages"], first["total"]) == (1, 3, 5)
    assert names(first) == [("web", ["docs", "website"])]
    page = Page(render_html(first))
    assert page.attrs("nav#pages a", "href") == ["/?page=2&per_page=2"]
    assert page.attrs("nav#pages a", "rel") == ["next"]
    second = view.page(PageQuery(page=2, per_page=2))
    assert names(second) == [("other", ["lonely"]), ("npm", ["npm-a"])]
    assert Page(render_html(second)).attrs("nav#pages a", "rel") == ["prev", "next"]
    beyond = view.page(PageQuery(page=99, per_page=2))
    assert (beyond["page"], names(beyond)) == (3, [("npm", ["npm-b"])])
    assert Page(render_html(view.page())).find("nav#pages") == []  # one page: no links


def test_search_and_filters(view: StatusView) -> None:
    def shown(**query: str) -> list[str]:
        doc = view.page(PageQuery.parse(query))
        return [n for _, group in names(doc) for n in group]

    assert shown(q="DOCS") == ["docs"]
    assert shown(q="winglang") == ["website"]  # the description
    assert shown(q="npm") == ["npm-a", "npm-b"]  # the tag
    assert shown(state="failing") == ["docs", "lonely"]
    assert shown(state="up", group="web") == ["website"]
    assert shown(group="npm", q="b") == ["npm-b"]
    assert shown(q="nothing-like-it") == []
    page = Page(render_html(view.page(PageQuery.parse({"q": "zzz", "state": "failing"}))))
    assert page.text("#no-assets") == ["No asset matches."]
    assert page.attrs("form#filter input[name=q]", "value") == ["zzz"]
    assert page.attrs("form#filter", "method") == ["get"]
    # Every group can be chosen, whatever the filter shows.
    assert page.attrs("form#filter select[name=group] option", "value") == [
        "", "npm", "other", "web",
    ]  # fmt: skip
    # What does not parse falls back to the default, never to an error.
    odd = PageQuery.parse({"page": "-3", "per_page": "100000", "state": "<x>", "q": " a " * 300})
    assert (odd.page, odd.per_page, odd.state, len(odd.q)) == (1, 100, "", 200)


def test_uptime_and_the_90_day_bar_with_incidents_in_the_titles(view: StatusView) -> None:
    page = Page(render_html(view.page()))
    docs = page.find('tr[data-name="docs"]')[0]
    uptime = {e.attrs["data-window"]: e.text for e in docs.select("[data-window]")}
    assert uptime == {"24h": "24h 99.00%", "30d": "30d 94.10%", "90d": "90d 94.10%"}
    days = docs.select(".day")
    assert len(days) == DAYS
    assert [d.classes[-1] for d in days[-10:]] == ["degraded"] * 7 + ["down"] + ["degraded"] * 2
    assert {d.classes[-1] for d in days[:-10]} == {"empty"}
    title = days[-3].attrs["title"]
    assert title.startswith((view.clock.now() - timedelta(days=2)).strftime("%Y-%m-%d"))
    assert "50.00% uptime" in title
    assert "#1 P2 Docs were slow <b>for two hours</b>; fixed upstream." in title  # unescaped
    assert "no data" in days[0].attrs["title"]
    assert page.find('tr[data-name="npm-a"]')[0].select(".uptime")[0].text == "24h —30d —90d —"
    assert "&lt;b&gt;" in render_html(view.page())  # escaped in the source


def test_resolved_incidents_show_the_public_note_or_the_title_only(view: StatusView) -> None:
    source = render_html(view.page())
    page = Page(source)
    rows = page.find("tr.resolved")
    assert [r.attrs["data-id"] for r in rows] == ["1", "2"]  # newest first
    cells = [c.text for c in rows[0].select("td")]
    assert cells[:3] == ["P2", "#1 Docs were slow <b>for two hours</b>; fixed upstream.", "docs"]
    assert rows[0].select("a")[0].attrs["href"] == "/assets/docs"
    assert rows[0].select(".duration")[0].text == "2h 0m"
    assert rows[1].select("td")[1].text == "#2 website is down"
    assert rows[1].select(".duration")[0].text == "30m"
    assert "INTERNAL-DETAIL" not in source
    assert "internal.example" not in source


async def test_the_asset_page(view: StatusView) -> None:
    doc = view.asset("docs")
    assert doc is not None
    page = Page(render_asset(doc))
    assert page.text("#asset-name") == ["docs"]
    assert page.text("#current .state") == ["down"]
    assert "expected status 2xx, got 503" in page.text("#current")[0]
    figures = {e.attrs["data-window"]: e.text for e in page.select("#uptime [data-window]")}
    assert figures == {"24h": "99.00%24h", "7d": "92.00%7d", "30d": "94.10%30d", "90d": "94.10%90d"}
    assert len(page.select(".days .day")) == DAYS
    for chart in ("svg#chart-24h", "svg#chart-30d"):
        [svg] = page.select(chart)
        assert svg.attrs["role"] == "img"
        assert svg.select("path.p50")[0].attrs["d"].startswith("M")
    assert page.select("svg#chart-30d rect title")[-1].text.endswith("p50 300 ms, p95 300 ms")
    assert page.select("#slo") == []  # nothing plugged in
    assert [r.attrs["data-id"] for r in page.select("tr.resolved")] == ["1"]
    assert view.asset("no-such") is None


async def test_the_slo_block_is_a_slot(view: StatusView) -> None:
    plugged = replace(
        view,
        slo_section=lambda name: f'<p id="budget">{name}: 42% left</p>' if name == "docs" else None,
    )
    docs = Page(render_asset(plugged.asset("docs")))  # type: ignore[arg-type]
    assert docs.text("#slo #budget") == ["docs: 42% left"]
    assert Page(render_asset(plugged.asset("website"))).select("#slo") == []  # type: ignore[arg-type]


async def test_a_failing_slo_block_leaves_the_page_without_it(view: StatusView) -> None:
    def broken(name: str) -> str | None:
        raise ZeroDivisionError("no budget")

    with structlog.testing.capture_logs() as logs:
        page = Page(render_asset(replace(view, slo_section=broken).asset("docs")))  # type: ignore[arg-type]
    assert page.select("#slo") == []
    assert page.text("#asset-name") == ["docs"]
    assert [e["event"] for e in logs] == ["status_slo_section_failed"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(st.sampled_from(["q", "state", "group", "page", "per_page", "x"]), st.text())
)
def test_any_query_gives_a_page(view: StatusView, query: dict[str, str]) -> None:
    parsed = PageQuery.parse(query)
    page = render_html(view.page(parsed))
    assert page.startswith("<!doctype html>")
    assert 1 <= parsed.per_page <= 100
    assert "<script" not in page.lower()


async def test_no_history_yet_and_an_empty_chart(clock: FakeClock) -> None:
    view = StatusView("t", clock, lambda: [config("docs")], Readings(clock, {}), None)
    page = Page(render_html(view.page()))
    assert "history not read yet" in page.text("#matching")[0]
    asset = Page(render_asset(view.asset("docs")))  # type: ignore[arg-type]
    assert asset.text("#uptime [data-window=24h] b") == ["—"]
    assert asset.text("svg#chart-24h .no-data") == ["no timed runs"]


async def test_routes_answer_html_with_the_strict_policy(aiohttp_client, view: StatusView) -> None:
    client = await aiohttp_client(build_app(CollectorRegistry(), lambda: True, None, view))
    for path, status in (("/", 200), ("/?q=docs&state=failing&page=2", 200),
                         ("/assets/docs", 200), ("/assets/nope%3Cb%3E", 404)):  # fmt: skip
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == status, path
        assert resp.headers["Content-Type"].startswith("text/html")
        assert (
            resp.headers["Content-Security-Policy"]
            == (
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                "form-action 'self'"
            )
            == PAGE_CSP
        )
        assert "<script" not in text.lower()
        assert not re.search(r"<[^>]*\son[a-z]+=", text)  # no event handler either
    missing = await (await client.get("/assets/nope%3Cb%3E")).text()
    assert "nope&lt;b&gt;" in missing


# --- a small HTML reader: elements, attributes, text, and simple selectors -------------


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.parts: list[str | Element] = []

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts).strip()

    def walk(self) -> list[Element]:
        out = []
        for c in self.children:
            out.append(c)
            out += c.walk()
        return out

    def matches(self, simple: str) -> bool:
        m = re.fullmatch(r"([a-z0-9]*)((?:[#.][\w-]+)*)((?:\[[^\]]+\])*)", simple)
        assert m, simple
        tag, marks, attrs = m.groups()
        if tag and self.tag != tag:
            return False
        for mark in re.findall(r"[#.][\w-]+", marks):
            if mark[0] == "#" and self.attrs.get("id") != mark[1:]:
                return False
            if mark[0] == "." and mark[1:] not in self.classes:
                return False
        for cond in re.findall(r"\[([^\]]+)\]", attrs):
            name, _, value = cond.partition("=")
            if name not in self.attrs or (value and self.attrs[name] != value.strip('"')):
                return False
        return True

    def select(self, selector: str) -> list[Element]:
        found = [self]
        for simple in selector.split():
            found = [e for f in found for e in f.walk() if e.matches(simple)]
            found = list(dict.fromkeys(found))
        return found


class Page(HTMLParser):
    VOID = frozenset({"meta", "link", "input", "br", "img", "line", "path", "hr"})

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self.current = self.root
        self.feed(source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        e = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(e)
        self.current.parts.append(e)
        if tag not in self.VOID:
            self.current = e

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        e = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(e)
        self.current.parts.append(e)

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.parts.append(data)

    def select(self, selector: str) -> list[Element]:
        return self.root.select(selector)

    find = select

    def text(self, selector: str) -> list[str]:
        return [e.text for e in self.select(selector)]

    def attrs(self, selector: str, name: str) -> list[str]:
        return [e.attrs.get(name, "") for e in self.select(selector)]
