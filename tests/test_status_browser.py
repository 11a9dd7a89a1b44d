"""The status page of a real daemon, rendered by headless Chromium through ChromeDriver."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

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
