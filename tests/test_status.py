"""The status page and /api/status: content, order, escaping, nothing secret."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from monitor.checks.http.check import HttpCheckConfig
from monitor.config.loader import parse_config
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import Defaults
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.history import RUNS, CheckReadings, RunHistory
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule
from monitor.web.api import build_app
from monitor.web.status import StatusView, render_html
from tests.fakes import FakeClock, MemoryStore

SECRET_HEADER = "Bearer hdr-s3cret"


def config(name: str, **fields) -> HttpCheckConfig:
    return HttpCheckConfig(name=name, kind="http", url=f"https://user:pw-s3cret@{name}.test/?token=q-s3cret",
                           headers={"Authorization": SECRET_HEADER}, failure_threshold=1,
                           success_threshold=1, **fields).resolved(Defaults())  # fmt: skip


@pytest.fixture
async def view(clock: FakeClock, metrics):
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    handler.configure([SeverityRule.model_validate({"name": "all", "severity": "P1"})], [])
    checks = [config("docs", description="Docs <site>", runbook="https://r.test/docs"),
              config("playground"), config("website")]  # fmt: skip
    for i in range(RUNS + 5):  # more runs than bars: the oldest fall off
        await clock.advance(30)
        for c in checks:
            bad = c.name == "docs" and i >= RUNS + 2
            outcome = Outcome.DOWN if bad else Outcome.UP
            message = "expected status 2xx, got 503 <script>alert(1)</script>" if bad else "200 OK"
            await handler(c, CheckResult(c.name, "http", outcome, FailureKind.HTTP_STATUS if bad else None,
                                         message, clock.now(), 0.012))  # fmt: skip
    await manager.assign(manager.open_incidents[0].id, "alice", "alice")
    await clock.advance(125)
    never = config("npm-new")
    return StatusView("Wing <assets>", clock, lambda: [*checks, never], handler, manager)


def test_history_keeps_the_last_runs_oldest_first(clock: FakeClock) -> None:
    h = RunHistory()
    assert h.runs() == []
    for i in range(RUNS + 3):
        outcome = Outcome.DOWN if i % 2 else Outcome.UP
        h.add(
            CheckResult(
                "c", "http", outcome, None, "", clock.now() + timedelta(seconds=i), i / 1000
            )
        )
    runs = h.runs()
    assert len(runs) == RUNS
    assert runs[0]["duration_ms"] == 3.0  # runs 0..2 fell off
    assert runs[-1]["duration_ms"] == pytest.approx(RUNS + 2, abs=0.01)
    assert [r["outcome"] for r in runs[:2]] == ["down", "up"]


async def test_snapshot_orders_failing_first_and_lists_incidents(view: StatusView) -> None:
    doc = view.snapshot()
    assert [a["name"] for a in doc["assets"]] == ["docs", "npm-new", "playground", "website"]
    assert doc["summary"] == {"down": 1, "degraded": 0, "blind": 0, "unknown": 1, "up": 2}
    docs = doc["assets"][0]
    assert docs["state"] == "down"
    assert [r["outcome"] for r in docs["runs"]][-4:] == ["up", "down", "down", "down"]
    assert len(docs["runs"]) == RUNS
    [incident] = doc["incidents"]
    assert (incident["severity"], incident["status"], incident["assignee"]) == (
        "P1",
        "triggered",
        "alice",
    )
    assert incident["age_s"] == 2 * 30 + 125  # opened two probes before the last one


async def test_html_escapes_and_shows_bars_state_and_incidents(view: StatusView) -> None:
    page = render_html(view.page())
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Wing &lt;assets&gt;</title>" in page
    assert page.count('class="bar down"') == 3
    assert page.count('class="bar up"') == (RUNS - 3) + 2 * RUNS
    assert '<tr class="asset down" data-name="docs">' in page
    assert '<td class="sev P1">P1</td>' in page
    assert "<td>3m</td><td>alice</td>" in page
    assert '<a href="https://r.test/docs" rel="noopener">runbook</a>' in page


async def test_nothing_secret_on_the_page_or_in_the_json(aiohttp_client, view: StatusView) -> None:
    client = await aiohttp_client(build_app(CollectorRegistry(), lambda: True, None, view))
    page = await (await client.get("/")).text()
    status = await (await client.get("/api/status")).text()
    for text in (page, status):
        for secret in ("s3cret", SECRET_HEADER, "token=", "user:pw"):
            assert secret not in text
    resp = await client.get("/")
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


def test_title_is_configurable() -> None:
    cfg = parse_config('daemon: {status_title: "Wing assets"}\nchecks: []\n', "m.yaml", {})
    assert cfg.daemon.status_title == "Wing assets"


class Readings:
    """A `CheckReadings` that is no pipeline: the page needs the interface only."""

    def __init__(self, clock: FakeClock) -> None:
        self.result = CheckResult(
            "docs", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503", clock.now(), 0.01
        )

    def state(self, check: str) -> CheckState | None:
        return CheckState(AlertState.DOWN, self.result.started_at) if check == "docs" else None

    def last_result(self, check: str) -> CheckResult | None:
        return self.result if check == "docs" else None

    def recent_runs(self, check: str) -> list[dict[str, object]]:
        return [{"at": "2026-11-02T12:00:00+00:00", "outcome": "down", "duration_ms": 10.0}] * (
            check == "docs"
        )


def test_the_page_reads_checks_through_the_read_interface(clock: FakeClock, metrics) -> None:
    readings: CheckReadings = Readings(clock)
    pipeline: CheckReadings = ResultHandler(metrics)  # the pipeline is one
    assert pipeline.recent_runs("docs") == []
    view = StatusView("t", clock, lambda: [config("docs"), config("website")], readings, None)
    docs, website = view.snapshot()["assets"]
    assert (docs["name"], docs["state"], docs["message"]) == ("docs", "down", "503")
    assert docs["runs"] == readings.recent_runs("docs")
    assert (website["state"], website["runs"], website["last_run"]) == ("unknown", [], None)
