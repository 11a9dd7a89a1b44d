"""Check ownership across real daemon processes sharing the private PostgreSQL: every
check runs on one replica once per interval; a replica killed with SIGKILL has its checks
run again by the others within a bound; a replica cut off from the database stops owning
its checks, the others take over, and nothing runs twice when it is back; a replica whose
wall clock is ten minutes off neither steals nor loses checks; PostgreSQL stopped and
started again: every check goes on running once per interval, and what changed meanwhile
opens and resolves incidents once it is back."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from monitor.app import App
from monitor.config.loader import load_config
from monitor.core.clock import SystemClock
from monitor.engine.fleet import owner
from tests.postgres import Cluster, TcpProxy, find_bin
from tests.proc import Daemon
from tests.test_store_postgres import password_of

pytestmark = pytest.mark.slow

INTERVAL = 2.0
CHECKS = 12
BEAT, TTL = 0.5, 2.0  # a replica silent for 2 s is gone; one cut off stops after 1.5 s


@dataclass
class Target:
    """Counts the hits of each path, with the test loop's time of each; the `failing`
    paths answer 500."""

    hits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failing: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.lstrip("/")
        self.hits[path].append(asyncio.get_running_loop().time())
        if path in self.failing:
            return web.Response(status=500, text="broken")
        return web.Response(text="ok")

    def since(self, t: float) -> dict[str, list[float]]:
        return {p: [x for x in hits if x >= t] for p, hits in self.hits.items()}


@pytest.fixture
async def target(aiohttp_server: Any) -> tuple[Target, str]:
    t = Target()
    app = web.Application()
    app.router.add_get("/{tail:.*}", t.handle)
    server = await aiohttp_server(app)
    return t, f"http://127.0.0.1:{server.port}"


def write_config(path: Path, base: str) -> Path:
    checks = "".join(
        f'  - {{name: c{i:02d}, kind: http, url: "{base}/c{i:02d}"}}\n' for i in range(CHECKS)
    )
    path.write_text(
        f"""
defaults: {{interval: {INTERVAL:g}s, timeout: 1s}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{path.parent}/state",
          store: "${{MONITOR_DATABASE_URL}}", replica_beat: {BEAT * 1000:g}ms,
          replica_ttl: {TTL:g}s}}
checks:
{checks}"""
    )
    return path


async def readyz(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def until(
    condition: Callable[[], Awaitable[Any]], *, what: str, timeout: float = 20.0
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def settled(ports: list[int], replicas: int) -> list[dict[str, Any]] | None:
    """The fleet detail of each daemon once all see `replicas` live and the checks are
    shared out (none waiting for a handover)."""
    fleets = [(await readyz(p))["fleet"] for p in ports]
    if any(f["live"] != replicas or "owns_nothing" in f for f in fleets):
        return None
    if sum(f["owned_checks"] for f in fleets) != CHECKS:
        return None
    return fleets


def gaps(hits: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(hits)]


def assert_once_per_interval(
    target: Target, start: float, end: float, allowed: dict[str, int] | None = None
) -> None:
    """Every check ran in [start, end), never twice within half an interval (but for
    the `allowed` number of times per check)."""
    for i in range(CHECKS):
        name = f"c{i:02d}"
        hits = [t for t in target.hits[name] if start <= t < end]
        assert hits, f"{name} did not run"
        twice = [g for g in gaps(hits) if g <= INTERVAL / 2]
        assert len(twice) <= (allowed or {}).get(name, 0), (f"{name} ran twice", hits)


async def test_each_check_runs_once_and_a_killed_replica_s_checks_move(
    pg_dsn: str, tmp_path: Path, target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hits, base = target
    config = write_config(tmp_path / "m.yaml", base)
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    daemons = [await Daemon(config).start() for _ in range(3)]
    loop = asyncio.get_running_loop()
    try:
        ports = [d.port for d in daemons]
        fleets = await until(lambda: settled(ports, 3), what="three replicas sharing the checks")
        assert all(f["config_differs"] == [] for f in fleets)
        start = loop.time()
        await asyncio.sleep(0)
        await until(
            lambda: _ran_for(hits, start + 3 * INTERVAL), what="three intervals", timeout=30
        )
        assert_once_per_interval(hits, start, loop.time())

        # SIGKILL one: its checks run again on the others within the bound.
        ids = [f["replica"] for f in fleets]
        victim = daemons[0]
        theirs = [f"c{i:02d}" for i in range(CHECKS) if owner(f"c{i:02d}", ids) == ids[0]]
        assert theirs
        last = {c: hits.hits[c][-1] for c in theirs}
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGKILL)
        await victim.proc.wait()
        killed = loop.time()
        await until(
            lambda: _all_ran_after(hits, theirs, killed), what="its checks run again", timeout=20
        )
        again = [min(t for t in hits.hits[c] if t > killed) - last[c] for c in theirs]
        # Gone after the TTL, noticed at the next beat, overdue ones within the spread.
        assert max(again) < TTL + BEAT + INTERVAL + 2.0 + 2.0, again
        await until(lambda: settled(ports[1:], 2), what="two replicas sharing the checks")
        calm = loop.time()
        await until(lambda: _ran_for(hits, calm + 3 * INTERVAL), what="calm", timeout=30)
        assert_once_per_interval(hits, calm, loop.time())
        # Exactly one monitor-health incident for the replica that is gone.
        incidents = await _incidents(ports[1])
        gone = [i for i in incidents if i["key"].startswith("monitor-health:replica-gone:")]
        assert len(gone) == 1, incidents
    finally:
        for d in daemons:
            await d.kill()


async def _ran_for(target: Target, until_t: float) -> bool:
    return asyncio.get_running_loop().time() >= until_t


async def _all_ran_after(target: Target, checks: list[str], t: float) -> bool:
    return all(any(x > t for x in target.hits[c]) for c in checks)


async def _incidents(port: int) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/api/incidents?status=triggered") as response,
    ):
        body = await response.json()
        return list(body["incidents"] if isinstance(body, dict) else body)


def through(dsn: str, port: int) -> str:
    """`dsn` with its port replaced (to go through a proxy)."""
    parts = urlsplit(dsn)
    assert parts.hostname is not None
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@{parts.hostname}:{port}"
    return parts._replace(netloc=netloc).geturl()


async def test_a_replica_cut_off_stops_the_others_take_over_and_nothing_runs_twice(
    pg_dsn: str, tmp_path: Path, target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hits, base = target
    config = write_config(tmp_path / "m.yaml", base)
    parts = urlsplit(pg_dsn)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = await TcpProxy(parts.hostname, parts.port).start()
    loop = asyncio.get_running_loop()
    daemons: list[Daemon] = []
    try:
        monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
        daemons += [await Daemon(config).start() for _ in range(2)]
        monkeypatch.setenv("MONITOR_DATABASE_URL", through(pg_dsn, proxy.port))
        daemons.append(await Daemon(config).start())
        ports = [d.port for d in daemons]
        fleets = await until(lambda: settled(ports, 3), what="three replicas sharing the checks")
        ids = [f["replica"] for f in fleets]
        cut = [f"c{i:02d}" for i in range(CHECKS) if owner(f"c{i:02d}", ids) == ids[2]]
        assert cut
        start = loop.time()

        proxy.sever()
        severed = loop.time()
        # Within its lease it stops owning its checks; the others take them over.
        await until(lambda: settled(ports[:2], 2), what="the others own everything")
        taken = loop.time()
        assert taken - severed < TTL + 5.0
        alone = await readyz(ports[2])
        assert alone["fleet"]["owned_checks"] == 0
        assert "store" in alone["fleet"]["owns_nothing"]
        assert alone["status"] == "ready"  # it keeps serving its API
        # It cannot tell a cut-off from a database down for all: it probes its share
        # on its own (nothing written, nothing paged), so those run twice meanwhile.
        assert alone["fleet"]["orphaned_checks"] == len(cut)
        await until(lambda: _ran_for(hits, taken + 2 * INTERVAL), what="two intervals")

        proxy.restore()
        restored = loop.time()
        # Back on the store: the others ran its checks, so it drops what it saw of them.
        await until(lambda: _equals(_orphaned(ports[2:]), 0), what="its orphans dropped")
        rejoined = loop.time()
        assert rejoined - restored < 10.0
        await until(lambda: settled(ports, 3), what="back to three", timeout=30)
        back = loop.time()
        await until(lambda: _ran_for(hits, back + 2 * INTERVAL), what="two intervals")
        assert_once_per_interval(hits, rejoined, loop.time())
        # Meanwhile the checks of the others never ran twice; its own at most twice an
        # interval (it and the one that took each over), and on both replicas.
        others = [f"c{i:02d}" for i in range(CHECKS) if f"c{i:02d}" not in cut]
        for name in others:
            ran = [t for t in hits.hits[name] if start <= t < rejoined]
            assert all(g > INTERVAL / 2 for g in gaps(ran)), (name, ran)
        for name in cut:
            ran = [t for t in hits.hits[name] if taken <= t < restored]
            assert all(b - a > INTERVAL / 2 for a, b in zip(ran, ran[2:], strict=False)), ran
            assert len(ran) >= 2 * ((restored - taken) // INTERVAL) - 2, (name, ran)
        assert daemons[2].find("checks_orphaned")
        assert daemons[2].find("orphans_dropped")
    finally:
        for d in daemons:
            await d.kill()
        await proxy.close()
    password = password_of(pg_dsn)
    for d in daemons:  # not in any line, the cut-off replica's failures included
        assert password not in json.dumps(d.events) + "\n".join(d.other)


class SkewedClock(SystemClock):
    """The real clock, its wall time ten minutes ahead."""

    def now(self) -> datetime:
        return super().now() + timedelta(minutes=10)


async def test_a_replica_with_its_clock_ten_minutes_off_neither_steals_nor_loses(
    pg_dsn: str, tmp_path: Path, target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hits, base = target
    path = write_config(tmp_path / "m.yaml", base)
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_dsn)
    daemon = await Daemon(path).start()
    skewed = App(
        load_config(str(path), {"MONITOR_DATABASE_URL": pg_dsn}), clock=SkewedClock(),
        env={}, install_signals=False,
    )  # fmt: skip
    running = asyncio.create_task(skewed.run())
    loop = asyncio.get_running_loop()
    try:
        await until(lambda: _ready(skewed), what="the skewed replica is ready")
        assert skewed.api_port is not None
        ports = [daemon.port, skewed.api_port]
        fleets = await until(lambda: settled(ports, 2), what="two replicas sharing the checks")
        assert all(f["owned_checks"] > 0 for f in fleets)
        moves = len(daemon.find("checks_moved"))
        start = loop.time()
        await until(lambda: _ran_for(hits, start + 4 * INTERVAL), what="four intervals")
        assert_once_per_interval(hits, start, loop.time())
        # Neither counts the other gone; the shares never moved.
        again = await settled(ports, 2)
        assert again is not None
        assert [f["owned_checks"] for f in again] == [f["owned_checks"] for f in fleets]
        assert all(r["age_s"] < TTL for f in again for r in f["replicas"])
        assert len(daemon.find("checks_moved")) == moves
    finally:
        skewed.request_stop()
        await asyncio.wait_for(running, 15)
        await daemon.kill()


async def _ready(app: App) -> bool:
    return app.ready


OUTAGE_S = 12.0  # PostgreSQL stopped: several leases and intervals


@pytest.fixture
def cluster() -> Any:
    """A private PostgreSQL cluster of the test's own, to stop and start again."""
    bindir = find_bin()
    if bindir is None:
        pytest.skip("no /usr/lib/postgresql/*/bin with initdb and pg_ctl")
    c = Cluster(bindir)
    try:
        c.start()
        yield c
    finally:
        c.stop()


async def _healthy(port: int) -> bool:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status == 200


async def _orphaned(ports: list[int]) -> int:
    return sum([int((await readyz(p))["fleet"]["orphaned_checks"]) for p in ports])


async def _all_incidents(port: int) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/api/incidents?limit=1000") as response,
    ):
        return list((await response.json())["incidents"])


async def test_postgresql_stopped_the_fleet_keeps_probing_and_delivers_when_it_is_back(
    cluster: Cluster, tmp_path: Path, target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hits, base = target
    config = write_config(tmp_path / "m.yaml", base)
    dsn = f"postgresql://monitor:{cluster.password}@127.0.0.1:{cluster.port}/postgres"
    monkeypatch.setenv("MONITOR_DATABASE_URL", dsn)
    loop = asyncio.get_running_loop()
    daemons = [await Daemon(config).start() for _ in range(3)]
    try:
        ports = [d.port for d in daemons]
        await until(lambda: settled(ports, 3), what="three replicas sharing the checks")
        hits.failing.add("c01")  # down before the outage: its incident is open…
        await until(lambda: _keys(ports[0], "triggered", "c01"), what="c01's incident")

        await asyncio.to_thread(cluster.pause)
        stopped = loop.time()
        # Each lease runs out; each replica goes on probing the share it last owned.
        await until(lambda: _equals(_orphaned(ports), CHECKS), what="every check orphaned")
        orphaned = loop.time()
        assert orphaned - stopped < TTL + 2 * BEAT
        hits.failing.discard("c01")  # …and it recovers during the outage,
        hits.failing.add("c00")  # while c00 goes down
        await until(lambda: _ran_for(hits, stopped + OUTAGE_S), what="the outage", timeout=30)
        for port in ports:  # every replica stays up and says why it owns nothing
            assert await _healthy(port)
            fleet = (await readyz(port))["fleet"]
            assert fleet["owned_checks"] == 0
            assert "probing" in fleet["owns_nothing"]
        # Every check went on running about once per interval, on one replica.
        assert_once_per_interval(hits, orphaned, loop.time())
        for i in range(CHECKS):
            ran = [t for t in hits.hits[f"c{i:02d}"] if orphaned <= t < loop.time()]
            assert len(ran) >= (loop.time() - orphaned) / INTERVAL - 1.5, (i, ran)

        await asyncio.to_thread(cluster.resume)
        resumed = loop.time()
        await until(lambda: settled(ports, 3), what="back to three", timeout=40)
        back = loop.time()
        # The state changes seen during the outage are delivered: c00's incident opens,
        # c01's resolves; one incident per check.
        await until(lambda: _keys(ports[2], "triggered", "c00"), what="c00's incident")
        await until(lambda: _keys(ports[0], "resolved", "c01"), what="c01 resolved")
        await until(lambda: _ran_for(hits, back + 2 * INTERVAL), what="two intervals")
        assert_once_per_interval(hits, back, loop.time())
        keys = [i["key"] for i in await _all_incidents(ports[1])]
        assert sorted(k for k in keys if k in ("c00", "c01")) == ["c00", "c01"], keys
        assert not [k for k in keys if k.startswith("monitor-health:replica-gone:")], keys
        for d in daemons:
            assert d.find("checks_orphaned")
        assert sum(len(d.find("orphans_kept")) for d in daemons) >= 1
        print(f"orphaned {orphaned - stopped:.1f}s after the stop;"
              f" back {back - resumed:.1f}s after the start")  # fmt: skip
    finally:
        for d in daemons:
            await d.kill()
    for d in daemons:  # the password in no line, the failures of the outage included
        assert cluster.password not in json.dumps(d.events) + "\n".join(d.other)


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _keys(port: int, state: str, key: str) -> bool:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/api/incidents?state={state}") as response,
    ):
        return any(i["key"] == key for i in (await response.json())["incidents"])
