"""An incident's public note (written through the API and the CLI) and the public history
of resolved incidents: what the status page may say, and never the internal text."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from monitor.cli.main import main
from monitor.core.errors import IncidentInvalid, IncidentNotFound
from monitor.core.model import Severity
from monitor.incidents.manager import IncidentManager
from monitor.incidents.public import MAX_PUBLIC_NOTE, public_incident
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.web.api import IncidentApi, build_app
from tests.fakes import FakeClock, MemoryStore
from tests.test_api import AUTH, TOKEN, failing

INTERNAL = "INTERNAL-resolver-note-7c1"  # text kept for the people on call only


@pytest.fixture
async def manager(clock: FakeClock) -> IncidentManager:
    m = IncidentManager(MemoryStore(), clock, Metrics(CollectorRegistry()), cooldown=timedelta(0))
    await m.load()
    return m


@pytest.fixture
async def client(aiohttp_client, manager: IncidentManager, clock: FakeClock):
    book = SilenceBook(manager.store, clock)
    await book.load()
    app = build_app(CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, TOKEN))
    return await aiohttp_client(app)


async def resolved(manager: IncidentManager, clock: FakeClock, check: str, minutes: float) -> int:
    """An incident of `check` that lasted `minutes`, resolved with an internal note."""
    number = await failing(manager, clock, check)
    await clock.advance(minutes * 60)
    await manager.resolve(number, "ana", INTERNAL)
    return number


class TestManager:
    async def test_set_clear_and_the_timeline_keeps_no_copy(
        self, manager: IncidentManager, clock: FakeClock
    ) -> None:
        number = await failing(manager, clock)
        noted = await manager.set_public_note(number, "  Docs were slow; fixed.  ", "ana")
        assert noted.public_note == "Docs were slow; fixed."
        assert manager.open_for("docs") == noted  # the cache the next change starts from
        again = await manager.set_public_note(number, "Docs were slow; fixed.", "bob")
        assert again == noted  # the same note again: nothing written
        cleared = await manager.set_public_note(number, None, "bob")
        assert cleared.public_note is None
        _, timeline = await manager.get(number)
        notes = [(e.event, e.actor, e.text) for e in timeline if e.event == "public_note"]
        assert notes == [
            ("public_note", "ana", "public note set by ana"),
            ("public_note", "bob", "public note cleared by bob"),
        ]
        assert all("slow" not in e.text for e in timeline)

    async def test_a_resolved_incident_takes_a_note_and_keeps_it(
        self, manager: IncidentManager, clock: FakeClock
    ) -> None:
        number = await resolved(manager, clock, "docs", 5)
        await manager.set_public_note(number, "A bad deploy; rolled back.", "ana")
        incident, _ = await manager.get(number)
        assert incident.public_note == "A bad deploy; rolled back."
        # A later change keeps it: every change starts from the stored incident.
        await manager.comment(number, "post-mortem on Monday", "bob")
        assert (await manager.get(number))[0].public_note == "A bad deploy; rolled back."

    async def test_bounded_and_only_for_incidents_that_exist(
        self, manager: IncidentManager, clock: FakeClock
    ) -> None:
        number = await failing(manager, clock)
        with pytest.raises(IncidentInvalid, match=f"at most {MAX_PUBLIC_NOTE}"):
            await manager.set_public_note(number, "x" * (MAX_PUBLIC_NOTE + 1), "ana")
        with pytest.raises(IncidentNotFound):
            await manager.set_public_note(number + 1, "text", "ana")
        assert (await manager.get(number))[0].public_note is None

    async def test_public_history_lists_the_assets_incidents_only(
        self, manager: IncidentManager, clock: FakeClock
    ) -> None:
        old = await resolved(manager, clock, "docs", 1)
        await clock.advance(86400 * 10)
        site = await resolved(manager, clock, "site", 90)
        await manager.set_public_note(site, "The CDN failed over.", "ana")
        report = await manager.report("Install fails", "ana", severity=Severity.P2)
        await manager.resolve(report.id, "ana")
        untriaged = await manager.report("spam", "ana")
        await manager.resolve(untriaged.id, "ana")
        drill = await manager.drill(Severity.P1, "ana")
        await manager.resolve(drill.id, "ana")
        await manager.monitor_health("monitor-health:x", "blind", "rate limited", ["docs"])
        await manager.monitor_health("monitor-health:x", "blind", "rate limited", [])
        await failing(manager, clock, "npm")  # still open
        found = await manager.public_history(clock.now() - timedelta(days=30))
        assert [p.id for p in found] == [report.id, site, old]
        assert [p.id for p in await manager.public_history(clock.now() - timedelta(days=5))] == [
            report.id, site,
        ]  # fmt: skip
        assert [p.id for p in await manager.public_history(clock.now(), limit=1)] == [report.id]
        by_id = {p.id: p for p in found}
        assert (by_id[site].summary, by_id[site].duration_s) == ("The CDN failed over.", 5400)
        assert by_id[old].summary == "docs is down"  # no note: the title
        assert public_incident((await manager.get(drill.id))[0]) is None


class TestApi:
    async def test_put_and_delete_the_note(self, client, manager, clock) -> None:
        number = await failing(manager, clock)
        path = f"/api/incidents/{number}/public-note"
        resp = await client.put(
            path, json={"note": "Looking into it.", "actor": "ana"}, headers=AUTH
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["incident"]["public_note"] == "Looking into it."
        shown = await (await client.get(f"/api/incidents/{number}")).json()
        assert shown["incident"]["public_note"] == "Looking into it."
        assert shown["timeline"][-1]["text"] == "public note set by ana"
        resp = await client.delete(path, json={"actor": "bob"}, headers=AUTH)
        assert resp.status == 200
        assert (await resp.json())["incident"]["public_note"] is None

    @pytest.mark.parametrize(
        ("body", "headers", "status", "message"),
        [({"note": "x"}, {}, 401, "missing or wrong bearer token"),
         ({"note": "   "}, AUTH, 400, "note: String should have at least 1 character"),
         ({"note": "x" * (MAX_PUBLIC_NOTE + 1)}, AUTH, 400, f"at most {MAX_PUBLIC_NOTE} characters"),
         ({}, AUTH, 400, "note: Field required"),
         ({"note": "x", "text": "y"}, AUTH, 400, "text: Extra inputs are not permitted")],
    )  # fmt: skip
    async def test_bad_writes_are_refused(
        self, client, manager, clock, body, headers, status, message
    ) -> None:
        number = await failing(manager, clock)
        resp = await client.put(f"/api/incidents/{number}/public-note", json=body, headers=headers)
        assert resp.status == status
        assert message in (await resp.json())["error"]
        assert (await manager.get(number))[0].public_note is None

    async def test_a_note_for_no_incident_is_404(self, client) -> None:
        resp = await client.put("/api/incidents/77/public-note", json={"note": "x"}, headers=AUTH)
        assert (resp.status, await resp.json()) == (404, {"error": "no incident 77"})

    async def test_history_shows_public_fields_only(self, client, manager, clock) -> None:
        first = await resolved(manager, clock, "docs", 2)
        second = await resolved(manager, clock, "site", 1)
        await manager.set_public_note(second, "A <b>bad</b> deploy & a rollback.", "ana")
        await manager.comment(second, INTERNAL, "bob")
        await failing(manager, clock, "npm")
        resp = await client.get("/api/incidents/history?days=7")
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        doc = await resp.json()
        assert doc["days"] == 7
        assert [i["id"] for i in doc["incidents"]] == [second, first]
        latest = doc["incidents"][0]
        assert latest == {
            "id": second, "check": "site", "severity": "P1", "title": "site is down",
            "note": "A <b>bad</b> deploy & a rollback.",
            "summary": "A <b>bad</b> deploy & a rollback.",
            "opened_at": latest["opened_at"], "resolved_at": latest["resolved_at"],
            "duration_s": 60,
        }  # fmt: skip
        assert doc["incidents"][1]["summary"] == "docs is down"
        text = await resp.text()
        for internal in (INTERNAL, "503", "sites-down", "timeline", "message"):
            assert internal not in text

    @pytest.mark.parametrize("query", ["days=0", "days=91", "days=x", "limit=0", "limit=501"])
    async def test_history_bounds(self, client, query) -> None:
        resp = await client.get(f"/api/incidents/history?{query}")
        assert resp.status == 400
        assert "is a number from 1 to" in (await resp.json())["error"]

    async def test_history_defaults_to_90_days(self, client, manager, clock) -> None:
        number = await resolved(manager, clock, "docs", 1)
        await clock.advance(86400 * 89)
        assert [i["id"] for i in (await (await client.get("/api/incidents/history")).json())[
            "incidents"]] == [number]  # fmt: skip
        await clock.advance(86400 * 2)
        doc = await (await client.get("/api/incidents/history")).json()
        assert (doc["days"], doc["incidents"]) == (90, [])


async def test_cli_sets_shows_and_clears_the_note(
    aiohttp_server, manager: IncidentManager, clock: FakeClock, capsys
) -> None:
    book = SilenceBook(manager.store, clock)
    api = await aiohttp_server(
        build_app(CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, TOKEN))
    )
    number = await failing(manager, clock)
    common = ["--api", str(api.make_url("")), "--token", TOKEN, "--as", "ana"]
    argv = ["note", str(number), "--public", "Docs are back.", *common]
    assert await asyncio.to_thread(main, argv) == 0
    assert capsys.readouterr().out.endswith(f"\n#{number} P1 triggered: docs is down\n")
    assert (await manager.get(number))[0].public_note == "Docs are back."
    assert await asyncio.to_thread(main, ["incident", str(number), *common]) == 0
    assert "  public note: Docs are back.\n" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["note", str(number), "--clear", *common]) == 0
    capsys.readouterr()
    assert (await manager.get(number))[0].public_note is None
    # A bad call is a clear error: exit 1, the API's reason.
    assert await asyncio.to_thread(main, ["note", "999", "--public", "x", *common]) == 1
    assert "error: 404: no incident 999\n" in capsys.readouterr().err
    # One of --public and --clear, always.
    with pytest.raises(SystemExit) as exited:
        main(["note", str(number), *common])
    assert exited.value.code == 2
    assert "one of the arguments --public --clear is required" in capsys.readouterr().err
