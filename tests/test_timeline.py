"""A timeline that reads like a story: stable messages, repeats collapsed with a count."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.checks.github_actions import RateBudget
from monitor.checks.http.check import HttpCheckConfig
from monitor.core.configtypes import Defaults
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.postmortem import render_postmortem
from monitor.incidents.rules import SeverityRule
from monitor.store.sqlite import SqliteStore
from tests.fakes import FakeClock


def test_a_rate_limit_refusal_says_the_same_thing_every_run(clock: FakeClock) -> None:
    budget = RateBudget("api.github.com", "anonymous", None)
    reset = int((clock.now() + timedelta(hours=1)).timestamp())
    headers = {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-limit": "60",
        "x-ratelimit-reset": str(reset),
    }
    first = budget.observe(403, headers, "{}", clock.now())
    later = budget.refusal(clock.now() + timedelta(minutes=17, seconds=3))
    assert first is not None
    assert later is not None
    assert later.message == first.message
    assert "(in " not in later.message
    assert (first.details["retry_in"], later.details["retry_in"]) == ("1h", "42m57s")


async def test_repeated_failures_collapse_into_one_entry(
    tmp_path: Path, clock: FakeClock, metrics
) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    await store.open()
    try:
        manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
        await manager.load()
        handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
        handler.configure([SeverityRule.model_validate({"severity": "P2"})], [])
        site = HttpCheckConfig(
            name="site", kind="http", url="http://x", failure_threshold=1, success_threshold=1
        ).resolved(Defaults())

        async def run(message: str, ok: bool = False) -> None:
            outcome, failure = (Outcome.UP, None) if ok else (Outcome.DOWN, FailureKind.HTTP_STATUS)
            await handler(
                site, CheckResult("site", "http", outcome, failure, message, clock.now(), 0.1)
            )
            await clock.advance(60)

        for _ in range(60):  # an hour of the same 503
            await run("503 Service Unavailable")
        last_503 = clock.now() - timedelta(seconds=60)
        await run("502 Bad Gateway")
        await run("502 Bad Gateway")
        await run("200 OK", ok=True)
        incident = (await store.list_incidents())[0]
        timeline = await store.timeline(incident.id)
        assert [(e.event, e.count) for e in timeline] == [
            ("opened", 60), ("failure", 2), ("recovered", 1), ("resolved", 1),
        ]  # fmt: skip
        assert timeline[0].last_at == last_503
        assert timeline[0].at == last_503 - timedelta(minutes=59)
        assert "(seen 60 times, last " in render_postmortem(incident, timeline)
    finally:
        await store.close()


async def test_the_count_survives_a_reopen_of_the_store(tmp_path: Path, clock: FakeClock) -> None:
    from monitor.core.model import Incident, IncidentStatus, TimelineEntry

    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path)
    await store.open()
    now = clock.now()
    incident = await store.create_incident(
        Incident(0, "k", "t", IncidentStatus.TRIGGERED, None, now, now),
        [TimelineEntry(0, now, "opened", "monitor", "503")],
    )
    assert await store.repeat_entry(incident.id, ["failure"], now) is None
    bumped = await store.repeat_entry(
        incident.id, ["opened", "failure"], now + timedelta(minutes=1)
    )
    assert bumped is not None
    assert bumped.count == 2
    await store.close()
    store = SqliteStore(path)
    await store.open()
    (entry,) = await store.timeline(incident.id)
    assert (entry.count, entry.last_at) == (2, now + timedelta(minutes=1))
    await store.close()


def test_monitor_incident_shows_the_count() -> None:
    from monitor.cli.remote import _incident_text, entry_from_json
    from monitor.core.model import TimelineEntry
    from monitor.web.api import to_json

    at = FakeClock().now()
    entry = TimelineEntry(
        1, at, "failure", "monitor", "503", count=12, last_at=at + timedelta(hours=1)
    )
    doc = to_json(entry)
    assert (doc["count"], doc["last_at"]) == (12, "2026-11-02T13:00:00+00:00")
    assert entry_from_json(doc) == entry
    incident = {"id": 1, "severity": "P2", "status": "triggered", "title": "site is down"}
    text = _incident_text({"incident": incident, "timeline": [doc]})
    assert text.endswith("failure          503 (seen 12 times, last 13:00:00)")
