"""Status and uptime badges of checks and groups: valid SVG that says what it shows,
cached with an ETag, unambiguous URLs, escaped text."""

from __future__ import annotations

import asyncio
import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import Defaults
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult
from monitor.engine.history import WINDOWS, HistoryView
from monitor.store.base import MINUTE, HistoryBucket
from monitor.web.api import build_app
from monitor.web.apischema import BADGE_WINDOWS, openapi_document
from monitor.web.badges import (
    GREEN,
    GREY,
    LIGHT_GREEN,
    ORANGE,
    RED,
    YELLOW,
    BadgeApi,
    render_badge,
    text_width,
    uptime_text,
)
from tests.fakes import FakeClock, MemoryStore
from tests.test_status_browser import CHROMEDRIVER, CHROMIUM, _require_browser

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
NOW = int(T0.timestamp())


def check(name: str, **fields: Any) -> HttpCheckConfig:
    return HttpCheckConfig(
        name=name, kind="http", url=f"https://{name}.test/", **fields
    ).resolved(Defaults())  # fmt: skip


class Readings:
    """The pipeline's readings of each check: only the alert state matters here."""

    def __init__(self) -> None:
        self.states: dict[str, AlertState] = {}

    def state(self, name: str) -> CheckState | None:
        return CheckState(self.states[name]) if name in self.states else None

    def last_result(self, name: str) -> CheckResult | None:
        return None

    def recent_runs(self, name: str) -> list[dict[str, Any]]:
        return []


# "group" is a check, and "uptime" a group: the URLs must still name one badge each.
CHECKS = [
    check("docs", tags=["docs"]), check("site", group="web"), check("api", group="web"),
    check("group", group="uptime"), check("npm-wing"), check("tagged", tags=["<b>&co/x"]),
]  # fmt: skip


@pytest.fixture
def world() -> tuple[MemoryStore, Readings, FakeClock]:
    return MemoryStore(), Readings(), FakeClock(T0)


@pytest.fixture
async def client(aiohttp_client, world):
    store, readings, clock = world
    badges = BadgeApi(lambda: CHECKS, readings, store, clock)
    return await aiohttp_client(build_app(CollectorRegistry(), lambda: True, badges=badges))


def parse(svg: str) -> dict[str, Any]:
    """The badge as an SVG parser reads it: size, texts, colours, title."""
    assert "<!DOCTYPE" not in svg
    assert "<!ENTITY" not in svg
    root = ET.fromstring(svg)  # noqa: S314  the monitor's own output, no DTD (checked above)
    assert root.tag == f"{SVG}svg"
    texts = root.findall(f".//{SVG}text")
    rects = root.findall(f"./{SVG}g/{SVG}rect")
    return {
        "width": int(root.attrib["width"]),
        "title": root.findtext(f"{SVG}title"),
        "label": texts[1].text,
        "value": texts[3].text,
        "shadows": (texts[0].text, texts[2].text),
        "lengths": [int(t.attrib["textLength"]) / 10 for t in texts[1::2]],
        "boxes": [int(r.attrib["width"]) for r in rects[:2]],
        "colour": rects[1].attrib["fill"],
    }


async def badge(client, path: str, status: int = 200, **headers: str) -> dict[str, Any]:
    resp = await client.get(path, headers=headers)
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("image/svg+xml")
    svg = await resp.text()
    return parse(svg) | {"headers": resp.headers}


def minutes(name: str, ago_s: int, up: int = 0, down: int = 0, blind: int = 0) -> HistoryBucket:
    start = NOW - ago_s
    start -= start % MINUTE
    return HistoryBucket(name, MINUTE, start, up=up, down=down, blind=blind)


class TestStatus:
    @pytest.mark.parametrize(
        ("state", "value", "colour"),
        [(AlertState.UP, "up", GREEN), (AlertState.DEGRADED, "degraded", YELLOW),
         (AlertState.DOWN, "down", RED), (AlertState.BLIND, "unknown", GREY),
         (AlertState.UNKNOWN, "unknown", GREY), (None, "unknown", GREY)],
    )  # fmt: skip
    async def test_a_checks_state(self, client, world, state, value, colour) -> None:
        if state is not None:
            world[1].states["docs"] = state
        shown = await badge(client, "/badge/docs/status.svg")
        assert (shown["label"], shown["value"], shown["colour"]) == ("docs", value, colour)
        assert shown["shadows"] == ("docs", value)
        assert shown["title"] == f"docs: {value}"
        headers = shown["headers"]
        assert headers["Content-Type"] == "image/svg+xml; charset=utf-8"
        assert headers["Cache-Control"] == "public, max-age=60"
        assert re.fullmatch(r'"[0-9a-f]{24}"', headers["ETag"])
        assert "default-src 'none'" in headers["Content-Security-Policy"]

    async def test_a_group_shows_its_worst_known_check(self, client, world) -> None:
        states = world[1].states
        assert (await badge(client, "/badge/group/web/status.svg"))["value"] == "unknown"
        states.update(site=AlertState.UP, api=AlertState.BLIND)
        shown = await badge(client, "/badge/group/web/status.svg")
        assert (shown["label"], shown["value"], shown["colour"]) == ("web", "up", GREEN)
        states["api"] = AlertState.DEGRADED
        assert (await badge(client, "/badge/group/web/status.svg"))["value"] == "degraded"
        states["site"] = AlertState.DOWN
        assert (await badge(client, "/badge/group/web/status.svg"))["value"] == "down"
        # A check without `group:` is in the group of its first tag, else "other".
        states.update(docs=AlertState.DOWN, **{"npm-wing": AlertState.UP})
        assert (await badge(client, "/badge/group/docs/status.svg"))["value"] == "down"
        assert (await badge(client, "/badge/group/other/status.svg"))["value"] == "up"

    async def test_etag_and_if_none_match(self, client, world) -> None:
        world[1].states["docs"] = AlertState.UP
        first = await client.get("/badge/docs/status.svg")
        tag = first.headers["ETag"]
        for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
            again = await client.get("/badge/docs/status.svg", headers={"If-None-Match": sent})
            assert again.status == 304, sent
            assert await again.read() == b""
            assert again.headers["ETag"] == tag
            assert again.headers["Cache-Control"] == "public, max-age=60"
        stale = await client.get("/badge/docs/status.svg", headers={"If-None-Match": '"old"'})
        assert stale.status == 200
        world[1].states["docs"] = AlertState.DOWN
        changed = await client.get("/badge/docs/status.svg", headers={"If-None-Match": tag})
        assert changed.status == 200
        assert changed.headers["ETag"] != tag
        assert parse(await changed.text())["value"] == "down"
        head = await client.head("/badge/docs/status.svg")
        assert (head.status, head.headers["ETag"]) == (200, changed.headers["ETag"])


class TestUptime:
    async def test_percent_colour_and_no_data(self, client, world) -> None:
        store = world[0]
        shown = await badge(client, "/badge/docs/uptime/24h.svg")
        assert (shown["label"], shown["value"], shown["colour"]) == ("uptime 24h", "no data", GREY)
        await store.add_history([minutes("site", 3600, up=997, down=3)])
        await store.add_history([minutes("site", 3 * 86400, down=10, blind=50)])
        day = await badge(client, "/badge/site/uptime/24h.svg")
        assert (day["value"], day["colour"]) == ("99.7%", LIGHT_GREEN)
        week = await badge(client, "/badge/site/uptime/7d.svg")
        assert (week["label"], week["value"], week["colour"]) == ("uptime 7d", "98.71%", YELLOW)

    @pytest.mark.parametrize(
        ("up", "down", "text", "colour"),
        [(10, 0, "100%", GREEN), (99_996, 4, "99.99%", GREEN), (999, 1, "99.9%", GREEN),
         (9_989, 11, "99.89%", LIGHT_GREEN), (95, 5, "95%", YELLOW), (9, 1, "90%", ORANGE),
         (1, 1, "50%", RED), (0, 3, "0%", RED)],
    )  # fmt: skip
    async def test_never_rounded_up(self, client, world, up, down, text, colour) -> None:
        await world[0].add_history([minutes("docs", 600, up=up, down=down)])
        shown = await badge(client, "/badge/docs/uptime/30d.svg")
        assert (shown["value"], shown["colour"]) == (text, colour)

    async def test_the_same_figure_as_the_history_api(self, client, world) -> None:
        store, _, clock = world
        await store.add_history([minutes("site", 60, up=3, down=1), minutes("site", 8 * 86400, down=4),
                                 minutes("site", 40 * 86400, up=8, blind=9)])  # fmt: skip
        figures = await HistoryView(store, clock).figures("site", "30d")
        for window in WINDOWS:
            shown = await badge(client, f"/badge/site/uptime/{window}.svg")
            assert shown["value"] == f"{figures['uptime_percent'][window]:g}%", window

    async def test_a_group_sums_its_checks(self, client, world) -> None:
        await world[0].add_history([minutes("site", 60, up=3), minutes("api", 60, down=1)])
        shown = await badge(client, "/badge/group/web/uptime/7d.svg")
        assert (shown["label"], shown["value"]) == ("uptime 7d", "75%")

    async def test_kept_a_minute(self, client, world) -> None:
        store, _, clock = world
        await store.add_history([minutes("docs", 60, up=1)])
        assert (await badge(client, "/badge/docs/uptime/24h.svg"))["value"] == "100%"
        await store.add_history([minutes("docs", 60, down=1)])
        assert (await badge(client, "/badge/docs/uptime/24h.svg"))["value"] == "100%"
        await clock.advance(61)
        assert (await badge(client, "/badge/docs/uptime/24h.svg"))["value"] == "50%"


class CountingStore(MemoryStore):
    """Counts `count_runs` calls; each takes `seconds` of the fake clock, or fails."""

    def __init__(self, clock: FakeClock, seconds: float = 0, fail: bool = False) -> None:
        super().__init__()
        self.clock, self.seconds, self.fail = clock, seconds, fail
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def count_runs(self, checks, resolution, since, until):
        self.calls.append(len(checks))
        await self.gate.wait()
        if self.seconds:
            await self.clock.advance(self.seconds)
        if self.fail:
            raise StoreError("database unreachable")
        return await super().count_runs(checks, resolution, since, until)


async def test_a_big_group_is_summed_in_chunks_and_kept_longer(aiohttp_client) -> None:
    clock = FakeClock(T0)
    store = CountingStore(clock, seconds=2)  # 3 chunks of 2 s: kept 120 s, not 60
    many = [check(f"c{i}", group="big") for i in range(120)]
    await store.add_history([minutes("c7", 60, up=1), minutes("c100", 60, down=1)])
    api = BadgeApi(lambda: many, Readings(), store, clock)
    client = await aiohttp_client(build_app(CollectorRegistry(), lambda: True, badges=api))
    assert (await badge(client, "/badge/group/big/uptime/24h.svg"))["value"] == "50%"
    assert store.calls == [50, 50, 20]
    await clock.advance(100)
    assert (await badge(client, "/badge/group/big/uptime/24h.svg"))["value"] == "50%"
    assert len(store.calls) == 3  # still kept
    await clock.advance(30)
    await badge(client, "/badge/group/big/uptime/24h.svg")
    assert len(store.calls) == 6


async def test_concurrent_requests_share_one_computation(aiohttp_client) -> None:
    clock = FakeClock(T0)
    store = CountingStore(clock)
    store.gate.clear()
    api = BadgeApi(lambda: CHECKS, Readings(), store, clock)
    client = await aiohttp_client(build_app(CollectorRegistry(), lambda: True, badges=api))
    asking = [asyncio.create_task(client.get("/badge/docs/uptime/90d.svg")) for _ in range(5)]
    while not store.calls:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    store.gate.set()
    answers = await asyncio.gather(*asking)
    assert [a.status for a in answers] == [200] * 5
    assert store.calls == [1]


async def test_a_store_that_fails_is_the_monitors_trouble(aiohttp_client) -> None:
    clock = FakeClock(T0)
    store = CountingStore(clock, fail=True)
    api = BadgeApi(lambda: CHECKS, Readings(), store, clock)
    client = await aiohttp_client(build_app(CollectorRegistry(), lambda: True, badges=api))
    shown = await badge(client, "/badge/docs/uptime/30d.svg", 503)
    assert (shown["label"], shown["value"], shown["colour"]) == ("uptime 30d", "unavailable", GREY)
    assert shown["headers"]["Cache-Control"] == "no-store"
    store.fail = False  # nothing kept of the failure: the next request asks again
    assert (await badge(client, "/badge/docs/uptime/30d.svg"))["value"] == "no data"
    # A bad label is refused before any work.
    calls = len(store.calls)
    resp = await client.get("/badge/docs/uptime/30d.svg", params={"label": "x" * 99})
    assert resp.status == 400
    assert len(store.calls) == calls


async def test_urls_name_one_badge_each(client, world) -> None:
    """A check named `group` and a group named `uptime` (check names and group names share
    a pattern): each URL still names exactly one badge."""
    world[1].states["group"] = AlertState.DOWN
    await world[0].add_history([minutes("group", 60, up=1, down=1)])
    check_status = await badge(client, "/badge/group/status.svg")
    assert (check_status["label"], check_status["value"]) == ("group", "down")
    group_status = await badge(client, "/badge/group/uptime/status.svg")
    assert (group_status["label"], group_status["value"]) == ("uptime", "down")
    check_uptime = await badge(client, "/badge/group/uptime/24h.svg")
    assert (check_uptime["label"], check_uptime["value"]) == ("uptime 24h", "50%")
    group_uptime = await badge(client, "/badge/group/uptime/uptime/24h.svg")
    assert (group_uptime["label"], group_uptime["value"]) == ("uptime 24h", "50%")


@pytest.mark.parametrize(
    "path",
    ["/badge/nope/status.svg", "/badge/nope/uptime/24h.svg", "/badge/docs/uptime/13d.svg",
     "/badge/docs/uptime/status.svg", "/badge/group/nope/status.svg",
     "/badge/group/web/uptime/1y.svg", "/badge/group/nope/uptime/24h.svg",
     "/badge/%3Cscript%3E/status.svg"],
)  # fmt: skip
async def test_unknown_is_a_404_badge(client, path: str) -> None:
    shown = await badge(client, path, 404)
    assert (shown["label"], shown["value"], shown["colour"]) == ("badge", "not found", GREY)
    assert shown["headers"]["Cache-Control"] == "no-store"


async def test_the_label_is_replaced_and_escaped(client, world) -> None:
    world[1].states["docs"] = AlertState.UP
    hostile = "<b>&\"'</b>"
    resp = await client.get("/badge/docs/status.svg", params={"label": hostile})
    svg = await resp.text()
    assert "<b>" not in svg
    assert "&lt;b&gt;&amp;&quot;&#x27;&lt;/b&gt;" in svg
    shown = parse(svg)
    assert (shown["label"], shown["title"]) == (hostile, f"{hostile}: up")
    resp = await client.get("/badge/docs/uptime/7d.svg", params={"label": "Docs 7 days"})
    assert parse(await resp.text())["label"] == "Docs 7 days"
    too_long = await client.get("/badge/docs/status.svg", params={"label": "x" * 65})
    assert too_long.status == 400
    assert await too_long.json() == {"error": "label is at most 64 characters"}


async def test_a_group_of_a_free_form_tag_is_reached_and_escaped(client, world) -> None:
    """Tags follow no pattern: a group named by one is still one URL segment, and shown
    escaped."""
    world[1].states["tagged"] = AlertState.UP
    resp = await client.get(f"/badge/group/{quote('<b>&co/x', safe='')}/status.svg")
    assert resp.status == 200
    svg = await resp.text()
    assert "<b>" not in svg
    assert parse(svg)["label"] == "<b>&co/x"


def test_render_escapes_every_text() -> None:
    shown = parse(render_badge("a<&>", 'b"c', GREEN))
    assert (shown["label"], shown["value"], shown["title"]) == ("a<&>", 'b"c', 'a<&>: b"c')


@pytest.mark.parametrize(
    "text", ["up", "docs", "WWWWWWWW", "iiiiiiii", "npm-winglang 99.99%", "ünïcödé ☃ 日本", ""]
)
def test_each_text_has_room(text: str) -> None:
    """Each text's box holds its estimated width with a margin, and the text is drawn to
    exactly that width (`textLength`), so it cannot run out of its box."""
    shown = parse(render_badge(text, text, RED))
    width = text_width(text)
    assert shown["lengths"] == [width, width]
    assert shown["boxes"] == [width + 12, width + 12]
    assert shown["width"] == 2 * (width + 12)


def test_widths_follow_the_letters() -> None:
    assert text_width("") == 0
    assert text_width("iiii") < text_width("nnnn") < text_width("WWWW")
    assert text_width("mm") > text_width("m")
    assert text_width("日本") >= 22  # unknown glyphs count as the widest letters
    assert text_width("é") == text_width("e")
    # Verdana 11px: shields' own badges draw "build" 27 px and "passing" 41 px wide.
    assert 27 <= text_width("build") <= 28
    assert 41 <= text_width("passing") <= 43


def test_uptime_text() -> None:
    assert [uptime_text(p) for p in (100.0, 99.9999, 99.95, 12.0, 0.0, 33.333)] == [
        "100%", "99.99%", "99.95%", "12%", "0%", "33.33%",
    ]  # fmt: skip


def test_openapi_lists_the_badges() -> None:
    assert tuple(WINDOWS) == BADGE_WINDOWS
    paths = openapi_document()["paths"]
    for path in ("/badge/{check}/status.svg", "/badge/{check}/uptime/{window}.svg",
                 "/badge/group/{group}/status.svg", "/badge/group/{group}/uptime/{window}.svg"):  # fmt: skip
        op = paths[path]["get"]
        assert "security" not in op  # open, like the status page
        assert set(op["responses"]) == {"200", "304", "400", "404", "503"}
        assert "image/svg+xml" in op["responses"]["200"]["content"]


# Names of every shape: narrow and wide letters, digits, signs, accents, long ones.
SAMPLES = ["npm-winglang", "vscode-marketplace", "WWWWWWWWWW", "MMMMMMMM", "docs", "uptime 30d",
           "99.99%", "il1|!.,:;'", "The Quick Brown Fox Jumps Over", "ünïcödé", "0123456789",
           "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "~!@#$%^&*()_+{}|<>?"]  # fmt: skip


def test_texts_fit_their_boxes_in_a_real_browser(tmp_path: Path) -> None:
    """Chromium measures each label in the badge's own font stack (Verdana, else DejaVu
    Sans) without `textLength`: it fits inside its box with room on both sides, and the
    box is not far wider than the text."""
    _require_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    page = tmp_path / "badges.html"
    page.write_text("<html><body>" + "".join(render_badge(t, "up", GREEN) for t in SAMPLES))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(page.as_uri())
        measured = driver.execute_script(
            "return [...document.querySelectorAll('svg')].map(svg => {"
            " const text = svg.querySelectorAll('text')[1];"
            " const box = svg.querySelectorAll('g rect')[0].width.baseVal.value;"
            " text.removeAttribute('textLength');"
            " return [text.textContent, text.getComputedTextLength() / 10, box]; })"
        )
    finally:
        driver.quit()
    assert [m[0] for m in measured] == SAMPLES
    for text, natural, box in measured:
        assert natural + 4 <= box, (text, natural, box)  # 2 px or more on each side
        assert box <= 1.25 * natural + 12, (text, natural, box)
