"""Connection exhaustion does not blind the monitor: the API's timeouts and cap, the
descriptor reserve, the open-file limit, and probes failing for the monitor's own lack
of resources counted as the monitor's failure."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.checks.base import classify_exception
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.core.resources import is_resource_error
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.web.api import ApiServer, IncidentApi, build_app
from tests.fakes import FakeClock, MemoryStore
from tests.proc import Daemon, wait_for
from tests.test_api_hostile import TOKEN


async def start(**limits: float) -> ApiServer:
    app = build_app(CollectorRegistry(), lambda: True)
    server = ApiServer(app, "127.0.0.1", 0, **limits)  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def small() -> AsyncIterator[ApiServer]:
    server = await start(max_connections=4, header_timeout_s=0.5, idle_timeout_s=0.5)
    yield server
    await server.stop()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def healthz(port: int) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
        s.get(f"http://127.0.0.1:{port}/healthz") as r,
    ):
        return r.status


async def test_a_connection_that_never_finishes_its_headers_is_closed(small: ApiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", small.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for _ in range(4):  # a header line now and then keeps no connection open
        await asyncio.sleep(0.2)
        writer.write(b"X-Slow: 1\r\n")
    assert await closed_within(reader, 2.0)
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(small: ApiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", small.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    assert await closed_within(reader, 2.0)
    writer.close()


async def test_a_body_that_never_arrives_is_a_408(monkeypatch) -> None:
    monkeypatch.setattr("monitor.web.common.BODY_TIMEOUT_S", 0.3)
    clock, store = FakeClock(), MemoryStore()
    manager = IncidentManager(store, clock, Metrics(CollectorRegistry()), cooldown=timedelta(0))
    app = build_app(
        CollectorRegistry(),
        lambda: True,
        IncidentApi(manager, SilenceBook(store, clock), clock, TOKEN),
    )
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /api/drills HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n\r\n{{".encode()
        )
        head = await asyncio.wait_for(reader.readline(), 5)
        assert head.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await server.stop()


async def test_idle_connections_give_way_to_new_ones(small: ApiServer) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", small.port) for _ in range(4)]
    for _ in range(3):  # each new request closes the oldest idle connection
        assert await healthz(small.port) == 200
    assert len(small.guard.open) <= 4
    for _, writer in idle:
        writer.close()


async def test_connections_in_the_probes_reserve_are_refused(monkeypatch) -> None:
    server = await start(reserve=100)
    try:
        monkeypatch.setattr("monitor.web.api.nofile_limit", lambda: 8)  # every fd is "reserved"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await closed_within(reader, 2.0)
        assert server.guard.refused == 1
        writer.close()
        monkeypatch.setattr("monitor.web.api.nofile_limit", lambda: 100_000)
        assert await healthz(server.port) == 200
    finally:
        await server.stop()


class TestResourceFailures:
    def test_errnos(self) -> None:
        for code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            assert is_resource_error(OSError(code, "x"))
        assert not is_resource_error(OSError(errno.ECONNREFUSED, "refused"))
        wrapped = aiohttp.ClientOSError(errno.EMFILE, "Too many open files")
        assert classify_exception(wrapped)[0] is FailureKind.MONITOR_RESOURCES
        assert FailureKind.MONITOR_RESOURCES.value == "monitor_resources"

    async def test_the_probe_client_says_monitor_resources(
        self, aiohttp_server, monkeypatch
    ) -> None:
        from monitor.checks import CheckContext
        from monitor.checks.http.check import HttpCheck, HttpCheckConfig
        from monitor.checks.http.httpclient import make_session
        from monitor.core.configtypes import Defaults

        async def ok(_request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        server = await aiohttp_server(app)
        config = HttpCheckConfig(
            name="site", kind="http", url=f"http://127.0.0.1:{server.port}/"
        ).resolved(Defaults())

        def no_socket(*_a: object, **_kw: object) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr("socket.socket", no_socket)
        async with make_session() as session:
            ctx = CheckContext(
                session=session, clock=FakeClock(), metrics=Metrics(CollectorRegistry())
            )
            obs = await HttpCheck(config, ctx).run()
        assert obs.failure is FailureKind.MONITOR_RESOURCES, obs

    async def test_never_the_assets_failure(self, clock: FakeClock) -> None:
        from monitor.checks.http.check import HttpCheckConfig

        metrics = Metrics(CollectorRegistry())
        handler = ResultHandler(metrics, clock=clock)
        config = HttpCheckConfig(name="site", kind="http", url="http://x/", failure_threshold=1)
        up = CheckResult("site", "http", Outcome.UP, None, "ok", clock.now(), 0.1)
        blind = CheckResult("site", "http", Outcome.DOWN, FailureKind.MONITOR_RESOURCES,
                            "the monitor ran out of resources", clock.now(), 0.1)  # fmt: skip
        await handler(config, up)
        for _ in range(3):
            await handler(config, blind)
        state = handler.states["site"]
        assert state.state.value == "blind"  # the monitor's failure: blind, never down
        assert state.seen is not None
        assert state.seen.value == "up"  # what was believed is kept
        assert metrics.blinded.labels("site")._value.get() == 3


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    script = (
        "import resource, json\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))\n"
        "from monitor.core.resources import raise_nofile_limit\n"
        "print(json.dumps(raise_nofile_limit()))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout.splitlines()[-1]) == [1024, 1024], out.stderr


def test_a_refused_raise_is_a_warning(monkeypatch) -> None:
    from monitor.core import resources
    from tests.test_secrets import captured_logs, restore_logs

    buffer = captured_logs(True)
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (256, 1024))

    def refuse(*_a: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert resources.raise_nofile_limit() == (256, 1024)
    try:
        assert "open_files_limit_not_raised" in buffer.getvalue()
    finally:
        restore_logs()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_idle_connections_do_not_blind_the_daemon(aiohttp_server, tmp_path: Path) -> None:
    """2,000 idle connections against a daemon whose limit is 1,024 (soft and hard): probes
    keep passing, /healthz answers, nothing is reported down."""
    hits: dict[str, int] = {}

    async def site(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return web.Response(text="Wing")

    app = web.Application()
    app.router.add_get("/{tail:.*}", site)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    checks = "\n".join(f'  - {{name: site{i}, kind: http, url: "{base}/{i}"}}' for i in range(20))
    config = tmp_path / "m.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, failure_threshold: 1, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state"}}
checks:
{checks}
""")
    daemon = await Daemon(config, nofile=1024).start()
    held: list[asyncio.StreamWriter] = []
    try:
        assert daemon.find("open_files_limit", soft=1024, hard=1024)
        await wait_for(lambda: len(hits) == 20, what="every check probed")

        async def connect() -> None:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", daemon.port), 5
                )
                held.append(writer)
            except (OSError, TimeoutError):
                pass  # refused or never accepted: what matters is that the daemon still sees

        await asyncio.gather(*(connect() for _ in range(2000)))
        assert len(held) > 1024  # more connections than the daemon has descriptors
        seen = dict(hits)
        for _ in range(8):
            assert await healthz(daemon.port) == 200
            await asyncio.sleep(0.25)
        # Every check keeps probing while the connections are open...
        await wait_for(
            lambda: all(hits[p] >= seen[p] + 2 for p in seen), timeout=20, what="more probes"
        )
        # ...and nothing was reported down or blind.
        assert daemon.find("check_down") == []
        assert daemon.find("incident_opened") == []
        assert daemon.find("probe_blinded") == []
        # The API gave way (idle connections closed, the rest refused), not the probes.
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) < 1024 - 16  # type: ignore[union-attr]
    finally:
        for writer in held:
            writer.close()
        await daemon.kill()


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from monitor.checks import CHECKS
    from tests.test_scheduler import ScriptedCheck

    monkeypatch.setitem(CHECKS, "scripted", ScriptedCheck)
    ScriptedCheck.scripts = {}
    return ScriptedCheck.scripts


class TestRunnerBlindness:
    async def test_failing_to_connect_while_starved(
        self,
        scripts,
        clock,
        metrics,
        monkeypatch,
    ) -> None:
        from tests.test_scheduler import Sink, down, make_config, runner_for

        scripts["a"] = down
        runner = runner_for(make_config("a"), clock, metrics, Sink())
        assert (await runner.run_once()).failure is FailureKind.CONNECT
        monkeypatch.setattr("monitor.engine.scheduler.starved", lambda: True)
        result = await runner.run_once()
        assert result.failure is FailureKind.MONITOR_RESOURCES
        assert "refused" in result.message

    async def test_a_check_raising_emfile(self, scripts, clock, metrics) -> None:
        from tests.test_scheduler import Sink, make_config, runner_for

        async def emfile() -> None:
            raise OSError(errno.EMFILE, "Too many open files")

        scripts["a"] = emfile
        result = await runner_for(make_config("a"), clock, metrics, Sink()).run_once()
        assert result.failure is FailureKind.MONITOR_RESOURCES
