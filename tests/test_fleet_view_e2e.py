"""What every replica serves, across three real daemons sharing the private PostgreSQL:
the same check states, incidents and silences whichever is asked; an acknowledgement
through one replica is seen by the others and not undone by the check's owner; a silence
created through one replica holds back the page of a check another one runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.engine.fleet import owner
from tests.proc import Daemon
from tests.test_store_postgres import password_of

pytestmark = pytest.mark.slow

TOKEN = "fleet-view-token"
FINE = ("ok0", "ok1", "ok2", "ok3")
CHECKS = (*FINE, "broken", "later")


@dataclass
class Target:
    """The assets (each path answers its status) and the webhook that pages land on."""

    status: dict[str, int] = field(default_factory=lambda: {"broken": 503})
    hits: dict[str, int] = field(default_factory=dict)
    hooks: list[dict[str, Any]] = field(default_factory=list)

    async def asset(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        self.hits[name] = self.hits.get(name, 0) + 1
        return web.Response(status=self.status.get(name, 200), text=name)

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.json())
        return web.Response(status=204)


def write_config(path: Path, port: int) -> Path:
    checks = "".join(
        f'  - {{name: {n}, kind: http, url: "http://127.0.0.1:{port}/{n}"}}\n' for n in CHECKS
    )
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 1s, failure_threshold: 1, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{path.parent}/state",
          store: "${{MONITOR_DATABASE_URL}}", replica_beat: 500ms, replica_ttl: 2s}}
api: {{token: {TOKEN}}}
severity:
  - {{name: down, match: {{states: [down]}}, severity: P1}}
notifiers:
  hook: {{type: webhook, url: "http://127.0.0.1:{port}/hook"}}
escalation:
  channel: hook
  policies: {{default: {{steps: [{{post: hook}}]}}}}
checks:
{checks}"""
    )
    return path


async def call(port: int, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers) as r,
    ):
        assert r.status < 300, (r.status, await r.text())
        return await r.json()


async def until(condition: Callable[[], Awaitable[Any]], *, what: str, timeout: float = 30) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def same_everywhere(ports: list[int], read: Callable[[int], Awaitable[Any]]) -> Any:
    """What `read` answers on every replica, once they all answer the same (else None)."""
    answers = [await read(p) for p in ports]
    return answers[0] if all(a == answers[0] for a in answers) else None


async def states(port: int) -> dict[str, str | None]:
    """Each check's state, once it has a last result (None before)."""
    doc = await call(port, "GET", "/api/status")
    return {a["name"]: a["state"] if a["last_run"] else None for a in doc["assets"]}


async def incidents(port: int) -> list[tuple[int, str, str, str | None]]:
    doc = await call(port, "GET", "/api/incidents")
    return [(i["id"], i["check"], i["status"], i["suppressed"]) for i in doc["incidents"]]


async def silences(port: int) -> list[int]:
    return [s["id"] for s in (await call(port, "GET", "/api/silences"))["silences"]]


@pytest.mark.timeout(120)  # three daemons starting and settling, slower under load
async def test_every_replica_serves_the_fleet_s_answers_and_takes_writes(
    pg_dsn: str, tmp_path: Path, aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Target()
    app = web.Application()
    app.router.add_post("/hook", target.hook)
    app.router.add_get("/{tail:.*}", target.asset)
    server = await aiohttp_server(app)
    config = write_config(tmp_path / "m.yaml", server.port)
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    daemons = [await Daemon(config).start() for _ in range(3)]
    try:
        ports = [d.port for d in daemons]

        async def fleet(port: int) -> dict[str, Any]:
            return (await call(port, "GET", "/readyz"))["fleet"]  # type: ignore[no-any-return]

        seen: list[Any] = []

        async def shared_out() -> list[dict[str, Any]] | None:
            found = [await fleet(p) for p in ports]
            seen[:] = found
            # With six checks one replica may own none ("every check is owned by another
            # replica"): the sum is what says they are shared out.
            ok = all(f["live"] == 3 and f["store_reachable"] for f in found)
            return found if ok and sum(f["owned_checks"] for f in found) == len(CHECKS) else None

        try:
            found = await until(shared_out, what="three replicas sharing the checks", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {seen}") from None
        live = [f["replica"] for f in found]
        port_of = {f["replica"]: p for f, p in zip(found, ports, strict=True)}

        def not_running(check: str) -> int:
            return next(p for r, p in port_of.items() if r != owner(check, live))

        # The same state of every check on every replica, each run by one of them.
        expected = dict.fromkeys(CHECKS, "up") | {"broken": "down"}
        await until(
            lambda: _equal(same_everywhere(ports, states), expected), what="the same states"
        )
        [(broken_id, _, status, _)] = await until(
            lambda: same_everywhere(ports, incidents), what="the broken check's incident"
        )
        assert status == "triggered"
        await until(lambda: _true(any("broken" in json.dumps(h) for h in target.hooks)),
                    what="the broken check's page")  # fmt: skip

        # A silence through a replica that does not run `later`; then `later` fails.
        await call(not_running("later"), "POST", "/api/silences", {
            "matchers": {"checks": ["later"]}, "duration": "1h", "author": "ana",
            "comment": "moving the server",
        })  # fmt: skip
        target.status["later"] = 503
        await until(lambda: same_everywhere(ports, silences), what="the silence everywhere")

        async def later_opened() -> Any:
            found = await same_everywhere(ports, incidents)
            return found and len(found) == 2 and found

        opened = await until(later_opened, what="the silenced check's incident")
        [later] = [i for i in opened if i[1] == "later"]
        assert later[3] is not None
        assert "silence" in later[3]

        # An ack through a replica that does not run `broken`: seen everywhere at once…
        await call(not_running("broken"), "POST", f"/api/incidents/{broken_id}/ack",
                   {"actor": "ana"})  # fmt: skip

        async def acked(port: int) -> bool:
            return any(i[0] == broken_id and i[2] == "acknowledged" for i in await incidents(port))

        async def acked_everywhere() -> bool:
            return all([await acked(p) for p in ports])

        await until(acked_everywhere, what="the ack on every replica")
        # … and the owner's next failing runs (a new failure, written to the incident)
        # keep it.
        target.status["broken"] = 500

        async def new_failure() -> Any:
            doc = await call(port_of[owner("broken", live)], "GET", f"/api/incidents/{broken_id}")
            return "500" in doc["incident"]["message"] and doc["incident"]

        incident = await until(new_failure, what="the owner's next failure on the incident")
        assert incident["status"] == "acknowledged"
        runs = target.hits["broken"]
        await until(lambda: _true(target.hits["broken"] >= runs + 2), what="two more runs")
        for port in ports:
            assert await acked(port)
        assert not [h for h in target.hooks if "later" in json.dumps(h)], target.hooks
    finally:
        for d in daemons:
            await d.kill()
    password = password_of(pg_dsn)
    for d in daemons:
        assert password not in json.dumps(d.events) + "\n".join(d.other)


async def _equal(answer: Awaitable[Any], expected: Any) -> bool:
    return bool(await answer == expected)


async def _true(value: bool) -> bool:
    return value
