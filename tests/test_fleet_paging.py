"""Exactly-one paging across replicas sharing one PostgreSQL: real daemon processes, a
real server (the session's private cluster, or one of the test's own), a local webhook
receiver that records each page's Idempotency-Key and when it arrived.

The escalation pages every 2 s (primary, then secondary, three passes); each page is due
at a known offset from the start, so "on time" is measured against its due time."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg
import pytest
from aiohttp import web

from tests.postgres import Cluster, TcpProxy, find_bin
from tests.proc import Daemon, wait_for
from tests.test_store_postgres import password_of

pytestmark = pytest.mark.slow

# The escalation's pages and when each is due after it starts (s): p<pass>s<step>.
DUE = {"p0s0": 0, "p0s2": 2, "p1s0": 4, "p1s2": 6, "p2s0": 8, "p2s2": 10}
LATE_S = 1.0  # the most a page may arrive after its due time, a failover included


@dataclass
class Hook:
    """The webhook receiver: (Idempotency-Key, arrival by the wall clock, body)."""

    seen: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    probes: int = 0  # runs of the check, by any replica

    async def site(self, _request: web.Request) -> web.Response:
        self.probes += 1
        return web.Response(text="ok")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append((request.headers.get("Idempotency-Key", ""), time.time(), body))
        return web.Response(text="ok")

    def pages(self) -> list[tuple[str, float]]:
        """Trigger pages: (action key `p<pass>s<step>`, arrival), in arrival order."""
        found = []
        for key, arrived, body in self.seen:
            if body.get("event") == "trigger" and (m := _PAGE.fullmatch(key)):
                found.append((m["action"], arrived))
        return found

    def keys(self) -> list[str]:
        return [k for k, _, b in self.seen if b.get("event") == "trigger"]


_PAGE = re.compile(r"incident:\d+:\d+:(?P<action>p\d+s\d+):hook:\w+")


@dataclass
class Fleet:
    hook: Hook
    config: Path
    daemons: list[Daemon]

    async def start(self, dsn: str, n: int = 1) -> list[Daemon]:
        """`n` replicas on `dsn` (started one after another: each inherits the DSN)."""
        os.environ["MONITOR_DATABASE_URL"] = dsn
        started = [await Daemon(self.config).start() for _ in range(n)]
        self.daemons += started
        return started


@pytest.fixture
async def fleet(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Fleet]:
    hook = Hook()
    target = web.Application()
    target.router.add_post("/hook", hook.handle)
    target.router.add_get("/site", hook.site)
    server = await aiohttp_server(target)
    base = f"http://127.0.0.1:{server.port}"
    config = tmp_path / "m.yaml"
    config.write_text(f"""
defaults: {{interval: 1s, timeout: 2s}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state",
          store: "${{MONITOR_DATABASE_URL}}"}}
api: {{token: t0ken}}
checks:
  - {{name: site, kind: http, url: "{base}/site"}}
notifiers:
  hook: {{type: webhook, url: "{base}/hook"}}
oncall:
  people: [{{name: alice}}, {{name: bob}}]
  rotations: [{{name: all, window: "00:00-00:00", members: [alice, bob], start: 2026-01-05,
               handoff: {{every: week, weekday: mon, at: "00:00"}}}}]
escalation:
  page_via: [hook]
  ack_timeout: 1h
  policies:
    default:
      steps: [{{page: primary}}, {{wait: 2s}}, {{page: secondary}}, {{wait: 2s}}]
      repeat: 2
""")
    before = os.environ.get("MONITOR_DATABASE_URL")
    f = Fleet(hook, config, [])
    yield f
    await asyncio.gather(*(d.kill() for d in f.daemons))
    # What each replica logged, shown by pytest when the test failed.
    for i, d in enumerate(f.daemons):
        for e in d.events:
            if e.get("event") != "check_up":
                print(i, json.dumps(e)[:400])
        print(i, "\n".join(d.other[-20:]))
    if before is None:
        os.environ.pop("MONITOR_DATABASE_URL", None)
    else:
        os.environ["MONITOR_DATABASE_URL"] = before


async def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.request(method, f"http://127.0.0.1:{port}{path}", json=body,
                  headers={"Authorization": "Bearer t0ken"}) as r,
    ):  # fmt: skip
        text = await r.text()
        return r.status, json.loads(text) if text.startswith("{") else text


async def fleet_view(d: Daemon) -> dict[str, Any] | None:
    """`/readyz`'s fleet detail, or None when the daemon does not answer."""
    try:
        _, body = await call(d.port, "GET", "/readyz")
    except (aiohttp.ClientError, TimeoutError):
        return None
    return body.get("fleet") if isinstance(body, dict) else None


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def the_leader(daemons: list[Daemon], timeout: float = 10) -> Daemon:
    """The one replica that says it leads (exactly one)."""

    async def one() -> Daemon | None:
        views = [await fleet_view(d) for d in daemons]
        leaders = [d for d, v in zip(daemons, views, strict=True) if v and v["pager_leader"]]
        return leaders[0] if len(leaders) == 1 else None

    leader: Daemon = await until(one, timeout=timeout, what="one leader")
    return leader


async def open_drill(via: Daemon) -> float:
    """A P1 drill through `via`; when it opened (Unix seconds)."""
    status, body = await call(via.port, "POST", "/api/drills", {"severity": "P1", "actor": "t"})
    assert status == 201, body
    return datetime.fromisoformat(body["incident"]["opened_at"]).timestamp()


def lateness(hook: Hook, opened: float) -> dict[str, float]:
    """Per page, its first arrival after its due time (s)."""
    first: dict[str, float] = {}
    for action, arrived in hook.pages():
        first.setdefault(action, arrived - (opened + DUE[action]))
    return first


async def all_pages(hook: Hook, timeout: float) -> None:
    await wait_for(lambda: {a for a, _ in hook.pages()} >= set(DUE), timeout=timeout,
                   what=f"every page ({[a for a, _ in hook.pages()]})")  # fmt: skip


@pytest.mark.timeout(120)
async def test_kill_9_of_leaders_mid_escalation_loses_and_delays_no_page(
    fleet: Fleet, pg_dsn: str
) -> None:
    replicas = await fleet.start(pg_dsn, 3)
    leader = await the_leader(replicas)
    others = [d for d in replicas if d is not leader]
    opened = await open_drill(others[0])  # opened on a standby: the leader hears of it
    await wait_for(lambda: any(a == "p0s2" for a, _ in fleet.hook.pages()), timeout=10,
                   what="the second page")  # fmt: skip
    await leader.kill()  # kill -9, 2 s before the next page is due
    successor = await the_leader(others, timeout=5)
    # Then the successor, the moment its page falls due (mid-send, or just before).
    await asyncio.sleep(max(0.0, opened + DUE["p1s2"] - time.time()))
    await successor.kill()
    last = await the_leader([d for d in others if d is not successor], timeout=5)
    await all_pages(fleet.hook, timeout=20)
    late = lateness(fleet.hook, opened)
    print("late after their due time (s):", late)  # shown with -rP
    assert all(-0.05 < s <= LATE_S for s in late.values()), late
    # Duplicates only with an identical key: one escalation, each page under one key.
    keys = fleet.hook.keys()
    assert all(_PAGE.fullmatch(k) for k in keys), keys
    assert len({k.split(":")[2] for k in keys}) == 1, keys  # one escalation
    assert len(set(keys)) == len(DUE), keys  # one key per page; a repeat has the same
    view = await fleet_view(last)
    assert view is not None
    assert view["pager_token"] == 3
    assert successor.find("pager_leader")
    assert last.find("pager_leader")
    _, text = await call(last.port, "GET", "/metrics")
    assert "\nmonitor_pager_leader 1.0\n" in text
    assert "\nmonitor_pager_lease_token 3.0\n" in text


def end_every_session(dsn: str) -> int:
    """`pg_terminate_backend` of every other client session on the server: what a
    restart of PostgreSQL or an administrator does to each connection of the replicas."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


@pytest.mark.timeout(120)
async def test_every_connection_ended_mid_escalation_loses_and_repeats_no_page(
    fleet: Fleet, pg_dsn: str
) -> None:
    replicas = await fleet.start(pg_dsn, 2)
    await the_leader(replicas)
    opened = await open_drill(replicas[1])
    for action in ("p0s0", "p1s0"):  # twice: right after a page, mid-escalation
        await wait_for(lambda a=action: any(x == a for x, _ in fleet.hook.pages()),  # type: ignore[misc]
                       timeout=15, what=action)  # fmt: skip
        assert await asyncio.to_thread(end_every_session, pg_dsn) >= 2 * 3
    await all_pages(fleet.hook, timeout=30)
    keys = fleet.hook.keys()
    assert len(set(keys)) == len(DUE), keys  # each page once (a repeat has the same key)
    late = lateness(fleet.hook, opened)
    print("late after their due time (s):", late)
    assert all(-0.05 < s <= LATE_S for s in late.values()), late
    for d in replicas:  # both stayed up and see the database again
        assert d.proc is not None
        assert d.proc.returncode is None
        assert (await call(d.port, "GET", "/healthz"))[0] == 200
    await the_leader(replicas)
    status, _ = await call(replicas[0].port, "POST", f"/api/incidents/{keys[0].split(':')[1]}/ack",
                           {"actor": "t"})  # fmt: skip
    assert status == 200  # a write through the API works on the new connections
    for d in replicas:
        assert password_of(pg_dsn) not in json.dumps(d.events) + "\n".join(d.other)


@pytest.mark.timeout(120)
async def test_a_leader_cut_off_from_the_database_stops_paging_and_is_replaced(
    fleet: Fleet, pg_dsn: str
) -> None:
    host, port = urlsplit(pg_dsn).hostname, urlsplit(pg_dsn).port
    assert host is not None
    assert port is not None
    proxies = [await TcpProxy(host, port).start() for _ in range(3)]
    try:
        replicas = []
        for proxy in proxies:
            replicas += await fleet.start(_via(pg_dsn, proxy.port))
        leader = await the_leader(replicas)
        cut = proxies[replicas.index(leader)]
        others = [d for d in replicas if d is not leader]
        opened = await open_drill(others[0])
        # Cut once the second page is sent and stored as sent (cut between the two, it
        # would be sent again under its key: allowed, see the kill -9 test).
        await wait_for(lambda: [e for e in leader.find("notification_sent") if ":p0s2:" in e["key"]],
                       timeout=10, what="the second page sent")  # fmt: skip
        cut.sever()
        await leader.event("pager_lease_lost", timeout=5)
        successor = await the_leader(others, timeout=5)
        await wait_for(lambda: any(a == "p1s2" for a, _ in fleet.hook.pages()), timeout=10,
                       what="pages from the successor")  # fmt: skip
        cut.restore()  # back: a standby now, it sends nothing more
        await all_pages(fleet.hook, timeout=20)
        late = lateness(fleet.hook, opened)
        assert all(-0.05 < s <= LATE_S for s in late.values()), late
        keys = fleet.hook.keys()
        assert len(keys) == len(set(keys)) == len(DUE), keys  # no page twice
        await until(lambda: _standby(leader), timeout=10, what="the old leader back, standing by")
        assert (await fleet_view(successor) or {}).get("pager_leader") is True
        password = password_of(pg_dsn)
        for d in replicas:  # lost connections are logged without the DSN's password
            assert password not in json.dumps(d.events) + "\n".join(d.other)
    finally:
        for proxy in proxies:
            await proxy.close()


async def _standby(d: Daemon) -> bool:
    view = await fleet_view(d)
    return view is not None and view["store_reachable"] and not view["pager_leader"]


def _via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def own_cluster() -> Iterator[tuple[Cluster, str]]:
    bindir = find_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required under CI: no initdb", pytrace=False)
        pytest.skip("no PostgreSQL binaries for a cluster of this test's own")
    cluster = Cluster(bindir)
    try:
        yield cluster, cluster.start()
    finally:
        cluster.stop()


@pytest.mark.timeout(150)
async def test_the_database_stopped_for_30_s_loses_nothing(
    fleet: Fleet, own_cluster: tuple[Cluster, str]
) -> None:
    cluster, dsn = own_cluster
    replicas = await fleet.start(dsn, 2)
    leader = await the_leader(replicas)
    standby = next(d for d in replicas if d is not leader)
    opened = await open_drill(standby)
    await wait_for(lambda: fleet.hook.pages(), timeout=10, what="the first page")
    await asyncio.to_thread(cluster.pause)
    down_at = time.time()
    # Down for 30 s: the replicas stay up and keep probing; what falls due waits.
    sent, probes = len(fleet.hook.seen), fleet.hook.probes
    while time.time() - down_at < 30:
        for d in replicas:
            assert d.proc is not None
            assert d.proc.returncode is None
            assert (await call(d.port, "GET", "/healthz"))[0] == 200
        await asyncio.sleep(1)
    assert len(fleet.hook.seen) == sent  # nothing sent without the database
    assert fleet.hook.probes >= probes + 20  # the check kept running (1 s interval)
    await asyncio.to_thread(cluster.resume)
    back_at = time.time()
    await all_pages(fleet.hook, timeout=30)
    keys = fleet.hook.keys()
    assert len(set(keys)) == len(DUE), keys
    # Each page due during the outage went out once the database was back.
    for action, arrived in fleet.hook.pages():
        if opened + DUE[action] >= down_at:
            assert back_at <= arrived <= back_at + 15, (action, arrived - back_at)
    # And a change made after it returns is delivered.
    leader = await the_leader(replicas, timeout=10)
    incident = int(keys[0].split(":")[1])
    status, _ = await call(standby.port, "POST", f"/api/incidents/{incident}/ack", {"actor": "t"})
    assert status == 200
    await wait_for(lambda: any(b.get("event") == "acknowledge" for _, _, b in fleet.hook.seen),
                   timeout=10, what="the acknowledgement")  # fmt: skip
    for d in replicas:
        # Each said it lost the database (whether its pager had anything to do meanwhile
        # or not), and that it had it back.
        assert d.find("replica_beat_failed")
    await wait_for(lambda: all(d.find("replica_beat_recovered") for d in replicas),
                   timeout=15, what="every replica beating again")  # fmt: skip
