"""Two real daemons on the private PostgreSQL, one HTTP target that fails for one of them
only (told apart by the user agent each daemon's environment gives it). With `confirm: 2`
the failure one of them sees is refuted by the other: no incident. When it fails for both,
the incident opens and its timeline names both replicas."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from tests.proc import Daemon
from tests.test_store_postgres import password_of

SECRET = "s3cr3t-probe-token-4711"  # planted: must show nowhere


async def get(port: int, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        assert r.status == 200, path
        return await r.json()


async def until(read: Any, *, what: str, timeout: float = 30.0) -> Any:
    """Awaits `read()` until it returns something truthy, within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await read()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value


@pytest.mark.slow
async def test_a_failure_one_replica_sees_is_refuted_one_both_see_opens_with_both(
    pg_dsn: str, tmp_path: Path, aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_for: set[str] = set()  # replicas ("a", "b") the target answers 500

    async def target(request: web.Request) -> web.Response:
        replica = request.headers.get("User-Agent", "").rpartition("/")[2]
        return web.Response(status=500 if replica in failing_for else 200, text=replica)

    app = web.Application()
    app.router.add_get("/", target)
    server = await aiohttp_server(app)
    config = tmp_path / "m.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, retries: 0, failure_threshold: 1, success_threshold: 1,
            confirm: 2}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 1s, state_dir: "{tmp_path}/state",
          store: "${{MONITOR_DATABASE_URL}}", user_agent: "monitor-test/${{REPLICA}}"}}
checks:
  - {{name: site, kind: http, url: "http://127.0.0.1:{server.port}/",
     headers: {{Authorization: "Bearer ${{PROBE_TOKEN}}"}}}}
severity:
  - {{match: {{states: [down]}}, severity: P1}}
""")
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    monkeypatch.setenv("PROBE_TOKEN", SECRET)
    monkeypatch.setenv("REPLICA", "a")
    a = await Daemon(config).start()
    monkeypatch.setenv("REPLICA", "b")
    b = await Daemon(config).start()
    try:
        ids = {}
        for name, d in (("a", a), ("b", b)):
            ids[name] = (await get(d.port, "/readyz"))["fleet"]["replica"]

        async def both_live() -> bool:
            lives = [(await get(d.port, "/readyz"))["fleet"]["live"] for d in (a, b)]
            return lives == [2, 2]

        await until(both_live, what="each replica sees the other")

        async def runs_site() -> str | None:
            fleets = {n: (await get(d.port, "/readyz"))["fleet"] for n, d in (("a", a), ("b", b))}
            owning = [n for n, f in fleets.items() if f["owned_checks"] == 1]
            settled = all("taking over" not in f.get("owns_nothing", "") for f in fleets.values())
            return owning[0] if len(owning) == 1 and settled else None

        # The check runs on one replica only (its owner): call that one a.
        seen_as = {"a": "a", "b": "b"}  # the User-Agent suffix the target tells them by
        if await until(runs_site, what="one replica runs the check") == "b":
            a, b = b, a
            ids, seen_as = {"a": ids["b"], "b": ids["a"]}, {"a": "b", "b": "a"}

        # Fails for a only: b sees it up, so a's failure is refuted, and disputed.
        failing_for.add(seen_as["a"])
        refuted = await a.event("check_down_refuted", check="site", timeout=30)
        assert refuted["reason"].startswith(f"replica {ids['b']} sees it up")
        assert b.find("confirmation_answered", check="site", seen="up")

        async def disputed() -> Any:
            (asset,) = (await get(a.port, "/api/status"))["assets"]
            return asset if asset["disputed"] else None

        asset = await until(disputed, what="disputed on the status page")
        assert asset["state"] == "up"
        assert asset["disputed"].startswith("another replica sees it up: 200")
        assert ids["b"] not in json.dumps(asset)  # host names stay off the public page
        assert (await get(a.port, "/api/incidents"))["incidents"] == []
        assert not a.find("incident_opened")
        assert not b.find("incident_opened")
        assert 'monitor_confirmations_total{outcome="refuted"}' in await _metrics(a.port)

        # Fails for both: confirmed, the incident opens, its timeline names both.
        failing_for.add(seen_as["b"])
        opened = await until(
            lambda: _first(a.find("incident_opened") + b.find("incident_opened")),
            what="the incident",
        )
        doc = await get(a.port, f"/api/incidents/{opened['incident_id']}")
        (entry,) = [e for e in doc["timeline"] if e["event"] == "confirmation"]
        assert entry["text"].startswith("confirmed: seen down from 2 replicas")
        assert {r["replica"] for r in entry["data"]["replicas"]} == set(ids.values())
        assert {r["seen"] for r in entry["data"]["replicas"]} == {"down"}
        assert ids["a"] in entry["text"]
        assert ids["b"] in entry["text"]
        assert SECRET not in json.dumps(doc)
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute("SELECT * FROM confirmations").fetchall()
        assert rows
        assert SECRET not in repr(rows)  # messages and ids only; the hash is of its mask
        # A clean stop ends the listening connection and the answering with the rest.
        b.signal(signal.SIGTERM)
        assert await b.wait(30) == 0
        assert not [line for line in b.other if "Warning" in line or "Traceback" in line]
    finally:
        await a.kill()
        await b.kill()
    password = password_of(pg_dsn)
    for d in (a, b):
        printed = json.dumps(d.events) + "\n".join(d.other)
        assert password not in printed
        assert SECRET not in printed


async def _first(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    return found[0] if found else None


async def _metrics(port: int) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        return await r.text()
