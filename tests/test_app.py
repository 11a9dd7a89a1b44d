"""The daemon built in-process (`App`) with the injected clock and a store: a check's
result flows through the pipeline to an incident and out through a notifier."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.app import App
from monitor.config.loader import parse_config
from monitor.core.model import IncidentStatus
from tests.fakes import FakeClock, MemoryStore
from tests.proc import wait_for


async def test_a_failing_check_opens_an_incident_and_pages(aiohttp_server, tmp_path: Path) -> None:
    hooks: list[dict[str, Any]] = []

    async def site(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", site)
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    config = parse_config(
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        f"checks:\n"
        f'  - {{name: site, kind: http, url: "{base}/", interval: 30s, failure_threshold: 2,'
        f" runbook: https://runbooks.test/site}}\n"
        f"severity:\n  - {{name: all, severity: P1}}\n"
        f'notifiers:\n  hook: {{type: webhook, url: "{base}/hook"}}\n'
        f"escalation:\n  channel: hook\n  policies:\n    default: {{steps: [{{post: hook}}]}}\n",
        "monitors.yaml",
        {},
    )
    clock, store = FakeClock(), MemoryStore()
    daemon = App(config, clock=clock, store=store, env={}, install_signals=False)
    running = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: daemon.ready, what="ready")

        async def tick() -> bool:
            await clock.advance(30)  # the next run is due; its probe is real I/O
            return True

        async def opened() -> list[Any]:
            while not store.incidents:
                await tick()
                await asyncio.sleep(0.02)
            return list(store.incidents.values())

        [incident] = await asyncio.wait_for(opened(), 15)
        assert incident.key == "site"
        assert incident.status is IncidentStatus.TRIGGERED
        assert incident.severity is not None
        assert incident.severity.value == "P1"
        assert "503" in incident.message
        assert daemon.results.state("site") is not None

        async def delivered() -> None:
            while not hooks:  # the pager and the outbox wait on the clock too
                await clock.advance(1)
                await asyncio.sleep(0.02)

        await asyncio.wait_for(delivered(), 15)
        [sent] = hooks
        assert sent["event"] == "trigger"
        assert sent["incident"]["id"] == incident.id
        assert sent["runbook"] == "https://runbooks.test/site"
    finally:
        daemon.request_stop()
        await asyncio.wait_for(running, 15)
