"""SIGHUP with a hostile file: the real daemon stays up on its old config, says where
the file is wrong, and keeps probing and answering."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp
import pytest
import structlog.testing
from aiohttp import web

from tests.proc import Daemon, wait_for
from tests.test_config_hostile import KILLERS

pytestmark = pytest.mark.slow

RELOAD_KILLERS = [
    k for k in KILLERS
    if k[0] in {
        "int tag", "python tag", "weeks overflow", "400 nines", "timestamp tag",
        "merge on a scalar", "4,301 digits", "huge repetition", "thousands of groups",
        "a mapping as a name", "billion laughs", "merge bomb", "NUL on line 2",
        "unknown notifier type", "notifier name with a line break", "empty file",
        "deep flow nesting", "a CA bundle that does not load",
    }
]  # fmt: skip


async def metric(port: int, name: str) -> float | None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        text = await r.text()
    m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


async def healthz(port: int) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/healthz") as r,
    ):
        return r.status


async def test_sighup_with_each_hostile_file_keeps_the_daemon_running(
    aiohttp_server, tmp_path: Path
) -> None:
    hits = 0

    async def site(_request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", site)
    server = await aiohttp_server(app)
    good = (
        "defaults: {interval: 200ms, timeout: 2s}\n"
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        f'checks:\n  - {{name: site, kind: http, url: "http://127.0.0.1:{server.port}/"}}\n'
    )
    config = tmp_path / "m.yaml"
    config.write_text(good)
    d = await Daemon(config).start()
    try:
        await d.event("check_up", check="site")
        for name, document, expected in RELOAD_KILLERS:
            failures = len(d.find("config_reload_failed"))
            config.write_text(document)
            d.signal(signal.SIGHUP)
            await wait_for(lambda: len(d.find("config_reload_failed")) > failures, what=name)  # noqa: B023
            errors = d.find("config_reload_failed")[-1]["errors"]
            assert errors, name
            assert all(e.startswith(f"{config}:") for e in errors), (name, errors)
            assert any(expected in e for e in errors), (name, errors)
            assert await healthz(d.port) == 200, name
            assert await metric(d.port, "monitor_config_last_reload_successful") == 0.0
            before = hits
            await wait_for(lambda: hits > before, what=f"a probe after {name}")  # noqa: B023
        config.write_text(good)
        d.signal(signal.SIGHUP)
        await d.event("config_reloaded")
        assert await metric(d.port, "monitor_config_last_reload_successful") == 1.0
        assert await metric(d.port, "monitor_config_last_reload_success_timestamp_seconds")
        assert d.proc is not None
        assert d.proc.returncode is None
        assert not [line for line in d.other if "Traceback" in line], d.other
    finally:
        await d.kill()


async def test_reload_reads_the_file_off_the_event_loop(
    aiohttp_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a slow file is read, the loop keeps turning: the read is in a thread."""
    import threading

    import monitor.app
    from monitor.app import App
    from monitor.config.loader import load_config

    async def site(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", site)
    server = await aiohttp_server(app)
    config = tmp_path / "m.yaml"
    config.write_text(
        f'daemon: {{listen: "127.0.0.1:0", state_dir: "{tmp_path}/state"}}\n'
        f'checks:\n  - {{name: site, kind: http, url: "http://127.0.0.1:{server.port}/"}}\n'
    )
    daemon = App(load_config(config, {}), config_path=str(config), env={}, install_signals=False)
    running = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: daemon.ready, what="ready")

        def slow_load(*args: object) -> object:
            threading.Event().wait(0.5)  # a file that takes long to read: blocks its thread
            raise RuntimeError("not a ConfigError")

        monkeypatch.setattr(monitor.app, "load_config", slow_load)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        assert await daemon.reload() is False
        ticker.cancel()
        assert ticks >= 10  # the loop ran on while the file was read
        assert daemon.metrics.reload_ok._value.get() == 0
        assert daemon.config.checks[0].name == "site"  # the running config stays

        monkeypatch.setattr(monitor.app, "load_config", load_config)
        config.write_text(config.read_text() + "".join(f"x{i}: 1\n" for i in range(150)))
        with structlog.testing.capture_logs() as logs:
            assert await daemon.reload() is False
        (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
        assert len(failed["errors"]) == 101
        assert failed["errors"][0] == f"{config}:4:1: x0: unknown key 'x0'"
        assert failed["errors"][-1] == "… and 50 more"
    finally:
        daemon.request_stop()
        await asyncio.wait_for(running, 15)
