"""The incident and silence HTTP API, mounted on a real local server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from monitor.core.alertstate import AlertState
from monitor.core.model import CheckResult, FailureKind, Outcome, Severity
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.web.api import IncidentApi, build_app
from tests.fakes import FakeClock, MemoryStore

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def world(clock: FakeClock):
    store = MemoryStore()
    registry = CollectorRegistry()
    manager = IncidentManager(store, clock, Metrics(registry), cooldown=timedelta(minutes=30))
    await manager.load()
    book = SilenceBook(store, clock)
    await book.load()
    return store, manager, book


@pytest.fixture
async def client(aiohttp_client, world, clock):
    _, manager, book = world
    app = build_app(CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, TOKEN))
    return await aiohttp_client(app)


async def failing(manager: IncidentManager, clock: FakeClock, check: str = "docs") -> int:
    result = CheckResult(
        check, "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503", clock.now(), 0.1
    )
    incident = await manager.on_check(CheckEvent(
        check=check, key=check, title=f"{check} is down", result=result, state=AlertState.DOWN,
        previous=AlertState.UP, severity=Severity.P1, rule="sites-down",
    ))  # fmt: skip
    assert incident is not None
    return incident.id


class TestAuth:
    async def test_writes_need_the_token(self, client, world, clock) -> None:
        number = await failing(world[1], clock)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            resp = await client.post(f"/api/incidents/{number}/ack", json={}, headers=headers)
            assert resp.status == 401
            assert await resp.json() == {"error": "missing or wrong bearer token"}
        resp = await client.post(
            f"/api/incidents/{number}/ack", json={"actor": "alice"}, headers=AUTH
        )
        assert resp.status == 200

    async def test_reads_are_open(self, client, world, clock) -> None:
        await failing(world[1], clock)
        resp = await client.get("/api/incidents")
        assert resp.status == 200

    async def test_no_token_means_no_write_api(self, aiohttp_client, world, clock) -> None:
        _, manager, book = world
        app = build_app(CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, None))
        client = await aiohttp_client(app)
        resp = await client.post("/api/incidents", json={"title": "x"}, headers=AUTH)
        assert resp.status == 403
        assert (await resp.json())["error"].startswith("the write API is off")


class TestIncidents:
    async def test_list_filter_and_show(self, client, world, clock) -> None:
        _, manager, _ = world
        first = await failing(manager, clock, "docs")
        await failing(manager, clock, "homepage")
        await client.post(f"/api/incidents/{first}/ack", json={"actor": "alice"}, headers=AUTH)
        body = await (await client.get("/api/incidents?state=acknowledged")).json()
        assert [i["check"] for i in body["incidents"]] == ["docs"]
        body = await (await client.get("/api/incidents?severity=P1")).json()
        assert {i["check"] for i in body["incidents"]} == {"docs", "homepage"}
        bad = await client.get("/api/incidents?state=sleeping")
        assert bad.status == 400
        shown = await (await client.get(f"/api/incidents/{first}")).json()
        assert shown["incident"]["status"] == "acknowledged"
        assert [e["event"] for e in shown["timeline"]] == ["opened", "acknowledged"]
        assert shown["timeline"][1]["actor"] == "alice"
        missing = await client.get("/api/incidents/999")
        assert (missing.status, await missing.json()) == (404, {"error": "no incident 999"})

    async def test_every_write(self, client, world, clock) -> None:
        number = await failing(world[1], clock)
        base = f"/api/incidents/{number}"
        for path, body in [
            ("/assign", {"person": "bob", "actor": "alice"}),
            ("/comment", {"text": "reverting", "actor": "bob"}),
            ("/severity", {"severity": "P0", "actor": "bob"}),
            ("/resolve", {"note": "reverted to 0.85.48", "actor": "bob"}),
        ]:
            resp = await client.post(base + path, json=body, headers=AUTH)
            assert resp.status == 200, await resp.text()
        shown = await (await client.get(base)).json()
        assert shown["incident"]["status"] == "resolved"
        assert shown["incident"]["assignee"] == "bob"
        assert shown["incident"]["severity"] == "P0"
        assert [e["event"] for e in shown["timeline"]] == [
            "opened",
            "assigned",
            "commented",
            "severity_set",
            "resolved",
        ]
        again = await client.post(base + "/resolve", json={}, headers=AUTH)
        assert (again.status, (await again.json())["error"]) == (
            409,
            f"incident {number} is already resolved",
        )

    @pytest.mark.parametrize(
        ("path", "body", "message"),
        [
            ("/assign", {}, "person: Field required"),
            ("/severity", {"severity": "P9"}, "severity: Input should be 'P0', 'P1' or 'P2'"),
            ("/comment", {"text": 5}, "text: Input should be a valid string"),
        ],
    )
    async def test_bad_writes(self, client, world, clock, path, body, message) -> None:
        number = await failing(world[1], clock)
        resp = await client.post(f"/api/incidents/{number}{path}", json=body, headers=AUTH)
        assert resp.status == 400
        assert (await resp.json())["error"] == message

    async def test_manual_report(self, client) -> None:
        resp = await client.post("/api/incidents", headers=AUTH, json={
            "title": "Install fails on Windows", "url": "https://discord.com/channels/1/2/3",
            "text": "npm ERR! code E404", "actor": "alice",
        })  # fmt: skip
        assert resp.status == 201
        incident = (await resp.json())["incident"]
        assert (incident["severity"], incident["source"]) == (None, "manual")

    async def test_racing_ack_and_resolve(self, client, world, clock) -> None:
        store, manager, _ = world
        number = await failing(manager, clock)
        responses = await asyncio.gather(
            client.post(f"/api/incidents/{number}/ack", json={"actor": "alice"}, headers=AUTH),
            client.post(f"/api/incidents/{number}/resolve", json={"actor": "bob"}, headers=AUTH),
        )
        statuses = sorted(r.status for r in responses)
        assert statuses in ([200, 200], [200, 409])  # resolve first makes the ack a conflict
        final = store.incidents[number]
        assert final.status.value == "resolved"
        events = [e.event for e in store.entries if e.incident_id == number]
        assert events in (["opened", "acknowledged", "resolved"], ["opened", "resolved"])


class TestSilences:
    async def test_create_list_expire(self, client, world, clock) -> None:
        resp = await client.post("/api/silences", headers=AUTH, json={
            "matchers": {"checks": ["npm-*"]}, "duration": "2h", "author": "alice",
            "comment": "registry migration",
        })  # fmt: skip
        assert resp.status == 201, await resp.text()
        silence = (await resp.json())["silence"]
        assert silence["matchers"] == {"checks": ["npm-*"]}
        assert silence["ends_at"] == (clock.now() + timedelta(hours=2)).isoformat()
        active = await (await client.get("/api/silences?active=1")).json()
        assert [s["id"] for s in active["silences"]] == [silence["id"]]
        expired = await client.post(f"/api/silences/{silence['id']}/expire", headers=AUTH)
        assert expired.status == 200
        assert (await (await client.get("/api/silences?active=1")).json())["silences"] == []
        assert len((await (await client.get("/api/silences")).json())["silences"]) == 1

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                {"matchers": {}, "duration": "1h", "author": "a", "comment": "c"},
                "a silence needs at least one matcher",
            ),
            (
                {"matchers": {"hosts": ["x"]}, "duration": "1h", "author": "a", "comment": "c"},
                "matchers.hosts: Extra inputs are not permitted",
            ),
            (
                {"matchers": {"checks": ["x"]}, "author": "a", "comment": "c"},
                "give ends_at (ISO time with a timezone) or duration",
            ),
            (
                {"matchers": {"checks": ["x"]}, "duration": "1h", "comment": "c"},
                "author: Field required",
            ),
            (
                {
                    "matchers": {"checks": ["x"]},
                    "ends_at": "2026-01-01T00:00:00",
                    "author": "a",
                    "comment": "c",
                },
                "ends_at: Input should have timezone info",
            ),
        ],
    )
    async def test_bad_silences(self, client, body, message) -> None:
        resp = await client.post("/api/silences", json=body, headers=AUTH)
        assert resp.status == 400
        assert message in (await resp.json())["error"]


async def test_drill(client) -> None:
    resp = await client.post("/api/drills", json={"severity": "P2", "actor": "alice"}, headers=AUTH)
    assert resp.status == 201
    incident = (await resp.json())["incident"]
    assert (incident["drill"], incident["severity"], incident["title"]) == (
        True,
        "P2",
        "DRILL: P2 paging test",
    )


async def test_incident_shows_last_known_good(client, world, clock) -> None:
    _, manager, _ = world
    result = CheckResult("npm-winglang", "npm", Outcome.DOWN, FailureKind.DEPRECATED, "deprecated",
                         clock.now(), 0.1)  # fmt: skip
    good = {"at": "2026-11-22T10:00:00+00:00", "values": {"version": "0.85.48"},
            "text": "…", "command": "npm dist-tag add winglang@0.85.48 latest", "url": None}  # fmt: skip
    incident = await manager.on_check(CheckEvent(
        check="npm-winglang", key="npm-winglang", title="npm", result=result, state=AlertState.DOWN,
        previous=AlertState.UP, severity=Severity.P0, rule="r", last_good=good,
    ))  # fmt: skip
    assert incident is not None
    doc = await (await client.get(f"/api/incidents/{incident.id}")).json()
    assert doc["incident"]["last_good"] == good
    listed = await (await client.get("/api/incidents")).json()
    assert listed["incidents"][0]["last_good"]["command"] == good["command"]
