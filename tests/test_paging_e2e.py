"""Paging end to end: the real daemon, local Slack, PagerDuty and webhook receivers.

Escalation waits are seconds here instead of minutes.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.proc import Daemon, wait_for
from tests.test_daemon import Target, get

pytestmark = pytest.mark.slow


class Receivers:
    """Records every request by path; `down` makes a path answer 503."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.down: set[str] = set()
        self.refuse: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path in self.down:
            return web.Response(status=503, text="down")
        if path in self.refuse:
            return web.Response(status=404, text="no_such_hook")
        body = await request.json()
        self.seen.append((path, dict(request.headers), body))
        if path == "/pd":
            return web.json_response(
                {"status": "success", "dedup_key": body.get("dedup_key")}, status=202
            )
        return web.Response(text="ok")

    def at(self, path: str) -> list[dict[str, Any]]:
        return [b for p, _, b in self.seen if p == path]

    def keys(self, path: str) -> list[str]:
        return [h.get("Idempotency-Key", "") for p, h, _ in self.seen if p == path]


@pytest.fixture
async def world(aiohttp_server, tmp_path: Path):
    target, receivers = Target(), Receivers()
    app = web.Application()
    app.router.add_get("/site", target.handle)
    app.router.add_post("/{tail:.*}", receivers.handle)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    today = datetime.now(UTC).date()  # alice is primary until next week's handoff
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[today.weekday()]
    config = tmp_path / "m.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, failure_threshold: 1, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state"}}
api: {{token: t0ken}}
checks:
  - {{name: site, kind: http, url: "{base}/site"}}
severity:
  - {{match: {{checks: [site]}}, severity: P1, runbook: "https://example.org/runbooks/site"}}
notifiers:
  slack: {{type: slack, url: "{base}/slack"}}
  pd: {{type: pagerduty, routing_key: R0UTING, url: "{base}/pd"}}
  hook: {{type: webhook, url: "{base}/hook"}}
oncall:
  people: [{{name: alice}}, {{name: bob}}]
  rotations: [{{name: all, window: "00:00-00:00", members: [alice, bob], start: {today},
               handoff: {{every: week, weekday: {weekday}, at: "00:00"}}}}]
escalation:
  channel: slack
  page_via: [pd, hook]
  ack_timeout: 1h
  policies:
    default:
      steps: [{{post: slack}}, {{page: primary}}, {{wait: 2s}}, {{page: secondary}}, {{wait: 2s}}]
      repeat: 2
      repeat_from: 1
""")
    daemons: list[Daemon] = []

    async def start() -> Daemon:
        d = await Daemon(config).start()
        daemons.append(d)
        return d

    yield target, receivers, start
    for d in daemons:
        await d.kill()


async def post(port: int, path: str, body: dict[str, Any]) -> int:
    import aiohttp

    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"http://127.0.0.1:{port}{path}", json=body, headers={"Authorization": "Bearer t0ken"}
        ) as r,
    ):
        return r.status


def hook_pages(r: Receivers) -> list[str]:
    return [
        b["recipients"][0] for b in r.at("/hook") if b["event"] == "trigger" and b["recipients"]
    ]


async def test_page_ack_resolve(world) -> None:
    target, r, start = world
    target.status = 503
    d = await start()
    opened = await d.event("incident_opened", check="site")
    await wait_for(lambda: hook_pages(r) == ["alice"], what="the primary paged")
    # Each notifier delivers from its own queue: the channel post and the PagerDuty
    # event may come a moment after the webhook's page.
    await wait_for(lambda: r.at("/slack") and r.at("/pd"), what="the channel post and PD")
    assert [b["event_action"] for b in r.at("/pd")] == ["trigger"]
    assert r.at("/pd")[0]["dedup_key"] == "site"
    assert r.at("/pd")[0]["payload"]["severity"] == "error"  # P1
    assert len(r.at("/slack")) == 1  # the channel post
    # The check names no runbook: the rule's is carried by every page and by the API.
    assert {b["runbook"] for b in r.at("/hook")} == {"https://example.org/runbooks/site"}
    assert {"href": "https://example.org/runbooks/site", "text": "Runbook"} in r.at("/pd")[0][
        "links"
    ]
    _, text = await get(d.port, f"/api/incidents/{opened['incident_id']}")
    assert json.loads(text)["incident"]["runbook"] == "https://example.org/runbooks/site"
    await wait_for(
        lambda: hook_pages(r) == ["alice", "bob"], timeout=10, what="the secondary after the wait"
    )
    assert (
        await post(d.port, f"/api/incidents/{opened['incident_id']}/ack", {"actor": "alice"}) == 200
    )
    await wait_for(
        lambda: "acknowledge" in [b["event_action"] for b in r.at("/pd")],
        what="ack sent to PagerDuty",
    )
    pages = len(hook_pages(r))
    await asyncio.sleep(0)  # let the pager see the ack
    target.status = 200
    await d.event("incident_resolved", incident_id=opened["incident_id"])
    await wait_for(
        lambda: "resolve" in [b["event_action"] for b in r.at("/pd")],
        what="resolve sent to PagerDuty",
    )
    assert len(hook_pages(r)) == pages  # nobody paged after the acknowledgement
    assert len(r.keys("/hook")) == len(set(r.keys("/hook")))


async def test_a_receiver_down_then_back_gets_everything(world) -> None:
    target, r, start = world
    r.down.add("/hook")
    target.status = 503
    d = await start()
    await d.event("incident_opened", check="site")
    await wait_for(lambda: len([b for b in r.at("/pd") if b["event_action"] == "trigger"]) >= 2, timeout=15,
                   what="PagerDuty paged while the webhook is down")  # fmt: skip
    assert r.at("/hook") == []
    r.down.clear()
    await wait_for(lambda: len(hook_pages(r)) >= 2, timeout=20, what="the webhook catching up")
    assert len(r.keys("/hook")) == len(set(r.keys("/hook")))


async def test_kill_9_mid_escalation(world) -> None:
    target, r, start = world
    target.status = 503
    first = await start()
    await first.event("incident_opened", check="site")
    await wait_for(lambda: hook_pages(r) == ["alice"], what="the primary paged")
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    await first.wait()
    second = await start()

    # The rest of the policy (3 passes: alice, bob, alice, bob, alice, bob) still happens.
    def distinct_pages() -> list[str]:
        # A page in flight at the kill may come again, with the same key: count it once.
        seen: dict[str, str] = {}
        for path, headers, body in r.seen:
            if path == "/hook" and body["event"] == "trigger" and body["recipients"]:
                seen.setdefault(headers["Idempotency-Key"], body["recipients"][0])
        return list(seen.values())

    await wait_for(
        lambda: len(distinct_pages()) >= 6, timeout=30, what="the remaining steps after the restart"
    )
    assert distinct_pages() == ["alice", "bob"] * 3
    keys = r.keys("/hook")
    assert len(keys) - len(set(keys)) <= 1, keys  # at most the one in flight, same key
    assert not second.find("incident_opened")
    _, text = await get(second.port, "/metrics")
    assert "monitor_notifications_total" in text


async def test_a_channel_refusing_for_good_raises_an_alert_on_the_others(world) -> None:
    target, r, start = world
    r.refuse.add("/hook")
    target.status = 503
    d = await start()
    await d.event("notification_failed", notifier="hook")
    await wait_for(lambda: any(b.get("event_action") == "trigger" and "cannot deliver through hook" in b["payload"]["summary"]
                               for b in r.at("/pd")), what="the alert about the monitor on PagerDuty")  # fmt: skip
    assert any("cannot deliver through hook" in b["text"] for b in r.at("/slack"))
    # Every page to the webhook is refused, yet the outage is reported once.
    await wait_for(lambda: len(d.find("notification_failed", notifier="hook")) >= 2,
                   what="a second refusal")  # fmt: skip
    await asyncio.sleep(0.3)
    assert len([b for b in r.at("/slack") if "cannot deliver through hook" in b["text"]]) == 1
    r.refuse.clear()  # fixed: the next page goes through, and the others hear it once
    await wait_for(lambda: any(b.get("event_action") == "resolve" and b["dedup_key"] == "monitor:hook"
                               for b in r.at("/pd")), timeout=20, what="the recovery notice")  # fmt: skip
    await wait_for(lambda: any("delivers through hook again" in b["text"] for b in r.at("/slack")),
                   what="the recovery notice in the channel")  # fmt: skip
    await asyncio.sleep(0.3)
    assert len([b for b in r.at("/slack") if "delivers through hook again" in b["text"]]) == 1
    _, text = await get(d.port, f"/api/incidents/{d.find('incident_opened')[0]['incident_id']}")
    dead = [e["text"] for e in json.loads(text)["timeline"] if e["event"] == "dead_letter"]
    assert dead
    assert dead[0].startswith("not delivered via hook: trigger to alice, refused permanently")


def slack_kinds(r: Receivers) -> list[str]:
    """What the channel heard, in order: post, acknowledge, resolve (from the headline)."""
    kinds = []
    for b in r.at("/slack"):
        head = b["text"].split("\n", 1)[0]
        kinds.append(
            "acknowledge"
            if "Acknowledged:" in head
            else "resolve"
            if "Resolved:" in head
            else "post"
        )
    return kinds


async def test_channels_back_after_ack_and_resolve_hear_the_story_in_order(world) -> None:
    # Slack and the webhook are down while the incident is paged, acknowledged and
    # resolved. Back up, they hear it in the order it happened, and nobody is paged for
    # an incident that is over: the held pages are summarized in the acknowledgement.
    target, r, start = world
    r.down.update({"/slack", "/hook"})
    target.status = 503
    d = await start()
    opened = await d.event("incident_opened", check="site")
    incident_id = opened["incident_id"]
    await wait_for(
        lambda: len([b for b in r.at("/pd") if b["event_action"] == "trigger"]) >= 2,
        what="PagerDuty paged twice while the others are down",
    )
    assert await post(d.port, f"/api/incidents/{incident_id}/ack", {"actor": "alice"}) == 200
    await d.event("incident_acknowledged", incident_id=incident_id)
    target.status = 200
    await d.event("incident_resolved", incident_id=incident_id)
    r.down.clear()
    await wait_for(
        lambda: len(r.at("/slack")) >= 3 and len(r.at("/hook")) >= 2,
        timeout=30,
        what="the channel and the webhook catching up",
    )
    await asyncio.sleep(0.5)  # anything out of order would arrive now
    assert slack_kinds(r) == ["post", "acknowledge", "resolve"]
    hook = r.at("/hook")
    assert [b["event"] for b in hook] == ["acknowledge", "resolve"]
    assert hook_pages(r) == []
    assert "While this channel was unreachable" in hook[0]["text"]
    assert "page to alice" in hook[0]["text"]
    assert "page to bob" in hook[0]["text"]
    _, text = await get(d.port, f"/api/incidents/{incident_id}")
    events = [e["event"] for e in json.loads(text)["timeline"]]
    assert "notification_superseded" in events
