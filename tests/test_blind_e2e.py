"""Blind end to end: the real daemon against a local GitHub that starts refusing it.

The checks go blind (not down), nobody is paged, the channel hears of one monitor-health
incident, and it resolves when GitHub answers again; the degraded canary comes back
degraded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.checks.test_github_actions import MAIN_PUSH, WORKFLOWS, FakeGitHub
from tests.proc import Daemon, wait_for
from tests.test_daemon import get
from tests.test_paging_e2e import Receivers

pytestmark = pytest.mark.slow


class LimitedGitHub(FakeGitHub):
    """The fake GitHub API that answers 429 with a short Retry-After while `limited`."""

    limited: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.limited:
            body = {"message": "You have exceeded a secondary rate limit."}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        return await super().handle(request)


def states(doc: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["state"] for a in doc["assets"]}


async def test_rate_limited_checks_go_blind_and_page_nobody(aiohttp_server, tmp_path: Path) -> None:
    github = LimitedGitHub()
    github.workflows = {"build.yml": WORKFLOWS["build.yml"], "canary.yml": WORKFLOWS["canary.yml"]}
    green = [dict(r, conclusion="success") for r in MAIN_PUSH]
    github.runs = {"build.yml": green}
    receivers = Receivers()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receivers.handle)
    app.router.add_route("*", "/{tail:.*}", github.handle)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    config = tmp_path / "m.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 5s, retries: 0, failure_threshold: 1, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state"}}
checks:
  - {{name: main-build, kind: github_actions, repo: winglang/wing, workflow: build.yml,
     branch: main, event: push, api_url: "{base}"}}
  - {{name: canary, kind: github_actions, repo: winglang/wing, workflow: canary.yml,
     api_url: "{base}"}}
severity:
  - {{match: {{states: [down]}}, severity: P1}}   # everything down pages: blind must not
notifiers:
  slack: {{type: slack, url: "{base}/slack"}}
  pd: {{type: pagerduty, routing_key: R0UTING, url: "{base}/pd"}}
oncall:
  people: [{{name: alice}}]
  rotations: [{{name: all, window: "00:00-00:00", members: [alice], start: 2026-01-05}}]
escalation:
  channel: slack
  page_via: [pd]
  policies:
    default: {{steps: [{{post: slack}}, {{page: primary}}]}}
""")
    d = await Daemon(config).start()
    try:

        async def status() -> dict[str, str]:
            return states(json.loads((await get(d.port, "/api/status"))[1]))

        seen: dict[str, str] = {}

        async def reached(wanted: dict[str, str]) -> bool:
            seen.update(await status())
            return seen == wanted

        await wait_until(reached, {"main-build": "up", "canary": "degraded"})
        github.limited = True
        await wait_until(reached, {"main-build": "blind", "canary": "blind"})
        opened = await d.event("monitor_health_opened")
        assert opened["title"].startswith("GitHub API (127.0.0.1): rate limit reached until ")
        await wait_for(lambda: receivers.at("/slack"), what="the channel post")
        _, metrics = await get(d.port, "/metrics")
        assert (
            'monitor_check_alert_state{check="canary",kind="github_actions",state="blind"} 1.0'
            in metrics
        )

        github.limited = False
        await wait_until(reached, {"main-build": "up", "canary": "degraded"})  # not down
        await d.event("incident_resolved", incident_id=opened["incident_id"])
        await wait_for(lambda: len(receivers.at("/slack")) >= 2, what="the resolve post")
        slack = receivers.at("/slack")
        assert "GitHub API (127.0.0.1): rate limit reached until" in slack[0]["text"]
        assert "check blind" in slack[0]["text"]
        assert "resolved" in json.dumps(slack[-1])
        assert receivers.at("/pd") == []  # nobody paged, ever
        assert d.find("incident_opened") == []  # no incident for an asset
        _, doc = await get(d.port, "/api/incidents?state=triggered,acknowledged,resolved")
        incidents = json.loads(doc)["incidents"]
        assert [(i["source"], i["status"]) for i in incidents] == [("monitor_health", "resolved")]
    finally:
        await d.kill()


async def wait_until(condition: Any, wanted: dict[str, str], timeout: float = 20.0) -> None:
    """Polls an async condition until it holds, with a deadline."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition(wanted):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for states {wanted}")
        await asyncio.sleep(0.05)
