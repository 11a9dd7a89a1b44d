"""The status page of a real daemon, rendered by headless Chromium through ChromeDriver."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.core.model import Incident, IncidentStatus, Severity
from monitor.store.base import HOUR, MINUTE, HistoryBucket
from monitor.store.sqlite import SqliteStore, default_state_path
from tests.proc import Daemon

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _require_browser() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    message = "Debian packages chromium and chromium-driver are needed (.ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs them: missing is a broken setup, not a skip
    pytest.skip(message)


def render(url: str, profile: Path) -> dict[str, Any]:
    """Loads `url` in headless Chromium; returns what the page shows and the console log."""
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(20)
        driver.get(url)
        rows = {
            row.get_attribute("data-name"): {
                "class": row.get_attribute("class"),
                "state": row.find_element(By.CSS_SELECTOR, ".state").text,
                "bars": [b.get_attribute("class") for b in row.find_elements(By.CSS_SELECTOR, ".bar")],
                "bar_height": row.find_elements(By.CSS_SELECTOR, ".bar")[0].size["height"]
                if row.find_elements(By.CSS_SELECTOR, ".bar") else 0,
                "message": row.find_element(By.CSS_SELECTOR, "td.msg").text,
            }
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.asset")
        }  # fmt: skip
        incidents = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "tr.incident")]
        down_colour = driver.execute_script(
            "return getComputedStyle(document.querySelector('.bar.down')).backgroundColor"
        )
        return {
            "title": driver.title,
            "rows": rows,
            "incidents": incidents,
            "down_colour": down_colour,
            "source": driver.page_source,
            "console": driver.get_log("browser"),  # type: ignore[no-untyped-call]
        }
    finally:
        driver.quit()


async def test_the_page_shows_a_failing_asset_as_failing(aiohttp_server, tmp_path: Path) -> None:
    _require_browser()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=503 if request.path == "/docs" else 200, text="Wing")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    config = tmp_path / "monitors.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, failure_threshold: 2, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state", status_title: "Wing assets"}}
api: {{token: api-s3cret}}
checks:
  - {{name: website, kind: http, url: "{base}/", description: "winglang.io"}}
  - {{name: docs, kind: http, url: "{base}/docs", headers: {{Authorization: "Bearer hdr-s3cret"}},
     runbook: "https://example.org/runbooks/docs"}}
severity:
  - {{name: docs-down, match: {{checks: [docs]}}, severity: P0}}
""")
    daemon = await Daemon(config).start()
    try:
        await daemon.event("incident_opened", check="docs", timeout=20)
        await daemon.event("check_up", check="website", timeout=20)
        page = await asyncio.to_thread(
            render, f"http://127.0.0.1:{daemon.port}/", tmp_path / "profile"
        )
    finally:
        await daemon.kill()

    assert page["title"] == "Wing assets"
    docs, website = page["rows"]["docs"], page["rows"]["website"]
    assert "down" in docs["class"].split()
    assert docs["state"] == "DOWN"  # rendered: upper-cased by the stylesheet
    assert docs["bars"].count("bar down") >= 2
    assert docs["message"] == "expected status 2xx, got 503 Service Unavailable"
    assert website["state"] == "UP"
    assert set(website["bars"]) == {"bar up"}
    assert docs["bar_height"] > 0  # the stylesheet applied (not blocked by the page's CSP)
    assert page["down_colour"] == "rgb(207, 34, 46)"
    [incident] = page["incidents"]
    assert incident.startswith("P0")
    assert "docs is down" in incident
    assert "s3cret" not in page["source"]
    errors = [e for e in page["console"] if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []


def browse(profile: Path, visit: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Runs `visit(driver)` in headless Chromium; returns what it found and the console."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage", "--window-size=1280,1600",
                 f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(20)
        found = visit(driver)
        found["console"] = driver.get_log("browser")  # type: ignore[no-untyped-call]
        return found
    finally:
        driver.quit()


async def seed(state_dir: Path) -> None:
    """Ten days of history for two checks and a resolved incident, in the store the daemon
    will open. (Its public note, shown instead of its title, is tested in
    tests/test_status_history.py.)"""
    store = SqliteStore(default_state_path(str(state_dir)))
    await store.open()
    now = int(datetime.now(UTC).timestamp())
    hour = now - now % HOUR
    buckets = []
    for h in range(1, 10 * 24):
        start = hour - h * HOUR
        buckets.append(HistoryBucket("website", MINUTE, start, up=60, sum_ms=60 * 90.0,
                                     max_ms=95.0, latency=(60, 0, 0, 0, 0, 0, 0, 0)))  # fmt: skip
        down = 30 if h == 50 else 0  # two days ago, half an hour down
        buckets.append(HistoryBucket("docs", MINUTE, start, up=60 - down, down=down,
                                     sum_ms=60 * 300.0, max_ms=400.0,
                                     latency=(0, 0, 60, 0, 0, 0, 0, 0)))  # fmt: skip
    await store.add_history(buckets)
    opened = datetime.fromtimestamp(hour - 50 * HOUR, UTC)
    await store.create_incident(
        Incident(id=0, key="docs#old", title="docs is down", status=IncidentStatus.RESOLVED,
                 severity=Severity.P1, opened_at=opened, updated_at=opened, check="docs",
                 resolved_at=opened + timedelta(minutes=30),
                 message="expected 2xx from https://internal.example/ INTERNAL-DETAIL"),
        [],
    )  # fmt: skip
    await store.close()


def visit_pages(base: str, shots: Path) -> Callable[[Any], dict[str, Any]]:
    def visit(driver: Any) -> dict[str, Any]:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.expected_conditions import staleness_of
        from selenium.webdriver.support.wait import WebDriverWait

        def visible(css: str) -> list[Any]:
            return [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]

        shots.mkdir(parents=True, exist_ok=True)
        found: dict[str, Any] = {}
        driver.get(f"{base}/?per_page=3")
        driver.save_screenshot(str(shots / "status.png"))
        found["groups"] = [g.get_attribute("data-group") for g in visible("tr.group")]
        found["rows"] = [r.get_attribute("data-name") for r in visible("tr.asset")]
        found["uptime"] = {
            r.get_attribute("data-name"): r.find_element(By.CSS_SELECTOR, ".uptime").text
            for r in visible("tr.asset")
        }
        days = visible('tr[data-name="docs"] .day')
        found["days"] = len(days)
        found["day_size"] = days[-3].size if days else None
        found["down_day_title"] = next(
            (d.get_attribute("title") for d in days if "day down" in d.get_attribute("class")), None
        )
        found["next"] = [a.get_attribute("href") for a in visible('nav#pages a[rel="next"]')]
        found["resolved"] = [r.text for r in visible("tr.resolved")]
        found["source"] = driver.page_source
        # The search form submits to the page (the policy allows this one form action).
        box = driver.find_element(By.CSS_SELECTOR, "form#filter input[name=q]")
        box.send_keys("winglang")
        page = driver.find_element(By.TAG_NAME, "html")
        driver.find_element(By.CSS_SELECTOR, "form#filter button").click()
        # The click only starts the navigation: wait until the old page is gone and the new
        # one has loaded, or the rows read below may belong to the page being left.
        WebDriverWait(driver, 10).until(staleness_of(page))
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        found["search_url"] = driver.current_url
        found["searched"] = [r.get_attribute("data-name") for r in visible("tr.asset")]
        driver.get(f"{base}/assets/website")
        driver.save_screenshot(str(shots / "asset.png"))
        found["asset_title"] = driver.find_element(By.ID, "asset-name").text
        found["figures"] = {
            e.get_attribute("data-window"): e.text.replace("\n", " ")
            for e in visible("#uptime [data-window]")
        }
        charts = {c.get_attribute("id"): c for c in visible("svg.chart")}
        found["charts"] = {k: c.size for k, c in charts.items()}
        found["p50_paths"] = [
            p.get_attribute("d") for p in visible("svg#chart-24h path.p50, svg#chart-30d path.p50")
        ]
        found["asset_source"] = driver.page_source
        driver.get(f"{base}/assets/no-such-asset")
        found["missing"] = driver.find_element(By.ID, "not-found").text
        return found

    return visit


async def test_history_groups_pages_and_the_asset_page(aiohttp_server, tmp_path: Path) -> None:
    _require_browser()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=503 if request.path == "/docs" else 200, text="Wing")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await seed(tmp_path / "state")
    config = tmp_path / "monitors.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, failure_threshold: 2, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state", status_title: "Wing assets"}}
groups:
  site: {{description: "winglang.io and its docs"}}
checks:
  - {{name: npm-a, kind: http, url: "{base}/a", tags: [packages]}}
  - {{name: npm-b, kind: http, url: "{base}/b", tags: [packages]}}
  - {{name: website, kind: http, url: "{base}/", group: site, description: "winglang.io"}}
  - {{name: docs, kind: http, url: "{base}/docs", group: site}}
severity:
  - {{name: docs-down, match: {{checks: [docs]}}, severity: P1}}
""")
    daemon = await Daemon(config).start()
    shots = tmp_path / "screenshots"
    try:
        await daemon.event("incident_opened", check="docs", timeout=20)
        await daemon.event("check_up", check="npm-b", timeout=20)
        base_url = f"http://127.0.0.1:{daemon.port}"
        found = await asyncio.to_thread(browse, tmp_path / "profile", visit_pages(base_url, shots))
    finally:
        await daemon.kill()

    assert (shots / "status.png").stat().st_size > 10_000
    assert (shots / "asset.png").stat().st_size > 10_000
    # The failing group first, its failing check first; three a page, then a link.
    assert found["groups"] == ["site", "packages"]
    assert found["rows"] == ["docs", "website", "npm-a"]
    assert found["next"] == [f"http://127.0.0.1:{daemon.port}/?page=2&per_page=3"]
    assert found["uptime"]["website"].split("\n") == ["24h 100%", "30d 100%", "90d 100%"]
    assert found["uptime"]["docs"].startswith("24h 100%\n30d 99.")
    assert found["days"] == 90
    assert found["day_size"]["height"] > 0
    assert found["day_size"]["width"] > 0
    title = found["down_day_title"]
    assert "uptime" in title
    assert "#1 P1 docs is down" in title
    [resolved] = found["resolved"]
    assert resolved.startswith("P1")
    assert "#1 docs is down" in resolved
    assert "30m" in resolved
    assert "?q=winglang" in found["search_url"]
    assert found["searched"] == ["website"]
    assert found["asset_title"] == "website"
    assert found["figures"] == {"24h": "100% 24h", "7d": "100% 7d", "30d": "100% 30d",
                                "90d": "100% 90d"}  # fmt: skip
    assert set(found["charts"]) == {"chart-24h", "chart-30d"}
    for size in found["charts"].values():
        assert size["width"] > 300
        assert size["height"] > 60
    assert len(found["p50_paths"]) == 2
    assert all(d.startswith("M") for d in found["p50_paths"])
    assert found["missing"] == "No asset is named “no-such-asset”."
    for source in (found["source"], found["asset_source"]):
        assert "INTERNAL-DETAIL" not in source
        assert "<script" not in source
    errors = [e for e in found["console"] if e["level"] in ("SEVERE", "WARNING")]
    # The page that is not found is answered 404: the browser says so, and only that.
    assert all("404" in e["message"] for e in errors), errors
