"""The heartbeat: pings a real local receiver on the injected clock's interval, `/fail`
with the reasons when the monitor is unhealthy, and survives every failure of the ping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.config.loader import parse_config
from monitor.core.errors import ConfigError
from monitor.core.redact import forget_all, redact_text, remember_config
from monitor.metrics.exporter import Metrics
from monitor.paging.heartbeat import Heartbeat, HeartbeatConfig, assess
from tests.fakes import FakeClock
from tests.proc import Daemon, wait_for

TOKEN = "hb-6b1f0c2e-7d4a-4f7e-9c55-secretping"


class Receiver:
    """A Healthchecks-style ping endpoint: records each ping; its answer is set by the test."""

    def __init__(self) -> None:
        self.pings: list[tuple[str, str, str]] = []  # method, path, body
        self.status = 200
        self.gate: asyncio.Event | None = None  # when set, pings wait for it

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if self.gate is not None:
            await self.gate.wait()
        self.pings.append((request.method, request.path, body))
        return web.Response(status=self.status, text="OK")


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    r = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", r.handle)
    server = await aiohttp_server(app)
    return r, f"http://127.0.0.1:{server.port}/ping/{TOKEN}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


class Running:
    """A heartbeat loop under a FakeClock, and what its health says."""

    def __init__(self, url: str, session: aiohttp.ClientSession, **config: Any) -> None:
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.reasons: list[str] = []
        self.config = HeartbeatConfig.model_validate({"url": url, "interval": "60s", **config})
        self.heartbeat = Heartbeat(
            lambda: self.config, session, self.clock, Metrics(self.registry), self.health
        )
        self.task: asyncio.Task[None] | None = None

    async def health(self) -> list[str]:
        return list(self.reasons)

    def start(self) -> Running:
        self.task = asyncio.create_task(self.heartbeat.run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def next_wake(self) -> float:
        return min(deadline for deadline, _, _ in self.clock._sleepers)

    async def parked(self) -> None:
        """Waits until the loop sleeps again (its ping is over)."""
        now = self.clock.monotonic()
        await wait_for(
            lambda: any(d > now for d, _, f in self.clock._sleepers if not f.done()),
            what="heartbeat asleep",
        )


async def test_pings_on_the_interval_while_healthy(receiver, session) -> None:
    r, url = receiver
    hb = Running(url, session).start()
    try:
        await wait_for(lambda: len(r.pings) == 1, what="first ping at start")
        assert r.pings[0] == ("POST", f"/ping/{TOKEN}", "ok")
        await hb.parked()
        assert hb.next_wake() == 60.0  # the next ping is one interval after the first
        await hb.clock.advance(59)
        assert len(r.pings) == 1
        await hb.clock.advance(1)
        await wait_for(lambda: len(r.pings) == 2, what="second ping")
        await hb.parked()
        assert sample(hb.registry, "monitor_heartbeat_pings_total", outcome="sent") == 2
        assert sample(hb.registry, "monitor_healthy") == 1
        sent = sample(hb.registry, "monitor_heartbeat_last_sent_timestamp_seconds")
        assert sent == hb.clock.now().timestamp()
    finally:
        await hb.stop()


async def test_unhealthy_pings_fail_with_the_reasons_and_recovers(receiver, session) -> None:
    r, url = receiver
    hb = Running(url, session, method="POST")
    hb.reasons = ["scheduler not running", "notifier slack in outage"]
    hb.start()
    try:
        await wait_for(lambda: len(r.pings) == 1, what="fail ping")
        assert r.pings[0] == (
            "POST", f"/ping/{TOKEN}/fail", "scheduler not running\nnotifier slack in outage"
        )  # fmt: skip
        await hb.parked()
        assert sample(hb.registry, "monitor_healthy") == 0
        hb.reasons = []
        await hb.clock.advance(60)
        await wait_for(lambda: len(r.pings) == 2, what="healthy ping")
        assert r.pings[1][1] == f"/ping/{TOKEN}"
        await hb.parked()
        assert sample(hb.registry, "monitor_healthy") == 1
    finally:
        await hb.stop()


async def test_get_pings_carry_no_body(receiver, session) -> None:
    r, url = receiver
    hb = Running(url + "/", session, method="GET")
    hb.reasons = ["store not answering (StoreError)"]
    hb.start()
    try:
        await wait_for(lambda: len(r.pings) == 1, what="ping")
        assert r.pings[0] == ("GET", f"/ping/{TOKEN}/fail", "")
    finally:
        await hb.stop()


async def test_failed_pings_are_counted_logged_without_the_url_and_never_stop_it(
    receiver, session
) -> None:
    r, url = receiver
    forget_all()
    hb = Running(url, session, timeout="1s")
    remember_config(hb.config)
    r.status = 500
    try:
        with capture_logs() as logs:
            hb.start()
            await wait_for(lambda: len(r.pings) == 1, what="ping answered 500")
            await hb.parked()
            assert sample(hb.registry, "monitor_heartbeat_pings_total", outcome="failed") == 1
            # A receiver that does not answer within the timeout.
            r.gate = asyncio.Event()
            await hb.clock.advance(60)
            await wait_for(
                lambda: sample(hb.registry, "monitor_heartbeat_pings_total", outcome="failed") == 2,
                what="ping timed out",
            )
            r.gate.set()
            r.gate = None
            # The loop goes on and pings again once the receiver answers.
            r.status = 200
            await hb.parked()
            await hb.clock.advance(60)
            await wait_for(
                lambda: sample(hb.registry, "monitor_heartbeat_pings_total", outcome="sent") == 1,
                what="ping after the failures",
            )
        failed = [e for e in logs if e["event"] == "heartbeat_failed"]
        assert [e["error"] for e in failed] == ["HTTP 500", "no answer within 1 s"]
        assert TOKEN not in repr(logs)
        assert "***" in redact_text(f"pinging {url} failed")
        assert TOKEN not in redact_text(url)
        assert hb.task is not None
        assert not hb.task.done()
    finally:
        await hb.stop()
        forget_all()


async def test_a_receiver_that_refuses_connections_is_a_counted_failure(session) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    hb = Running(f"http://127.0.0.1:{port}/{TOKEN}", session)
    with capture_logs() as logs:
        assert await hb.heartbeat.beat(hb.config) is False
    assert sample(hb.registry, "monitor_heartbeat_pings_total", outcome="failed") == 1
    assert [e["error"] for e in logs if e["event"] == "heartbeat_failed"] == [
        "ClientConnectorError"
    ]
    assert TOKEN not in repr(logs)


async def test_without_a_url_it_only_assesses_the_health(session) -> None:
    hb = Running("", session)
    hb.reasons = ["scheduler not running"]
    assert hb.config.ping_url is None
    assert await hb.heartbeat.beat(hb.config) is False
    assert sample(hb.registry, "monitor_healthy") == 0
    assert sample(hb.registry, "monitor_heartbeat_pings_total", outcome="sent") is None


def _store(outcome: str) -> Callable[[], Awaitable[object]]:
    async def answer() -> object:
        if outcome == "raises":
            raise OSError("connection refused to postgresql://u:pw@db/monitor")
        if outcome == "hangs":
            await asyncio.Event().wait()
        return None

    return answer


@pytest.mark.parametrize(
    ("running", "store", "outages", "expected"),
    [
        (True, "answers", [], []),
        (False, "answers", [], ["scheduler not running"]),
        (True, "raises", [], ["store not answering (OSError)"]),
        (True, "hangs", [], ["store did not answer within 0.05 s"]),
        (True, "answers", ["slack", "email"],
         ["notifier email in outage", "notifier slack in outage"]),
    ],
)  # fmt: skip
async def test_what_healthy_means(running, store, outages, expected) -> None:
    reasons = await assess(
        running=running, store_answers=_store(store), outages=outages, timeout_s=0.05
    )
    assert reasons == expected


def test_config_section_validates_and_hides_the_url() -> None:
    text = f"""
checks: []
heartbeat: {{url: "https://hc-ping.example/{TOKEN}", interval: 30s, timeout: 5s}}
"""
    config = parse_config(text, "m.yaml", {})
    assert config.heartbeat.ping_url == f"https://hc-ping.example/{TOKEN}"
    assert config.heartbeat.interval == timedelta(seconds=30)
    assert TOKEN not in repr(config.heartbeat)
    assert parse_config("checks: []\n", "m.yaml", {}).heartbeat.ping_url is None
    with pytest.raises(ConfigError) as err:
        parse_config(f'checks: []\nheartbeat: {{url: "ftp://x/{TOKEN}"}}\n', "m.yaml", {})
    assert "expected an http:// or https:// URL" in str(err.value)
    assert TOKEN not in str(err.value)
    with pytest.raises(ConfigError, match="interval"):
        parse_config("checks: []\nheartbeat: {interval: 0s}\n", "m.yaml", {})


@pytest.mark.slow
async def test_the_daemon_pings_every_second_and_never_shows_the_url(
    receiver, tmp_path: Path
) -> None:
    r, url = receiver
    config = tmp_path / "m.yaml"
    config.write_text(
        f"""
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state"}}
heartbeat: {{url: "${{HB_URL}}", interval: 1s, timeout: 2s}}
checks: []
"""
    )
    os.environ["HB_URL"] = url
    try:
        d = await Daemon(config).start()
    finally:
        del os.environ["HB_URL"]
    try:
        await wait_for(lambda: len(r.pings) >= 3, timeout=10, what="three pings")
        assert {p[1] for p in r.pings} == {f"/ping/{TOKEN}"}
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{d.port}/metrics") as resp,
        ):
            text = await resp.text()
        assert "monitor_healthy 1.0" in text
        assert 'monitor_heartbeat_pings_total{outcome="sent"}' in text
        r.status = 503  # the receiver refuses: logged, counted, the daemon stays up
        await d.event("heartbeat_failed", error="HTTP 503", timeout=10)
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{d.port}/healthz") as resp,
        ):
            assert resp.status == 200
        d.signal(signal.SIGTERM)  # a planned stop: no /fail ping
        assert await d.wait(30) == 0
        assert all(not p[1].endswith("/fail") for p in r.pings)
    finally:
        await d.kill()
    assert TOKEN not in repr(d.events) + "\n".join(d.other)
