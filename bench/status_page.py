"""The status page at scale: `--checks` checks (in 50 groups, 1 % down, 1 % degraded) with
`--days` days of hour rows of synthetic history in a fresh SQLite store, and 300 resolved
incidents. Prints the time of the summaries' first read (every check's 90 days) and of a
refresh a minute later, then per page: its size in bytes and the server's render time
(building the page's document and its HTML, the median of `--repeat` renders).

    PYTHONPATH=$PWD python3 bench/status_page.py --checks 10000
    PYTHONPATH=$PWD python3 bench/status_page.py --checks 10000 --db /tmp/pages.sqlite3  # kept

The store of 10,000 checks x 90 days is about 3 GB and takes about 10 minutes to write;
with `--db` it is written once and read again by later runs.

Nothing is served over HTTP: what is timed is the work a request does on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.configtypes import Defaults
from monitor.core.model import (
    CheckResult,
    FailureKind,
    Incident,
    IncidentStatus,
    Outcome,
    Severity,
)
from monitor.engine.summary import Summaries
from monitor.store.base import HOUR
from monitor.store.sqlite import SqliteStore
from monitor.web.status import PageQuery, StatusView, render_asset, render_html

NOW = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
GROUPS = 50


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.t.timestamp()

    async def sleep_until(self, deadline: float) -> None:
        raise NotImplementedError


def name(n: int) -> str:
    return f"check-{n:05d}-example"


def state_of(n: int) -> AlertState:
    return (
        AlertState.DOWN if n % 100 == 7 else AlertState.DEGRADED if n % 100 == 8 else AlertState.UP
    )


class Readings:
    def __init__(self, checks: int) -> None:
        self.states = {
            name(n): CheckState(state_of(n), NOW - timedelta(minutes=n % 600))
            for n in range(checks)
        }

    def state(self, check: str) -> CheckState | None:
        return self.states.get(check)

    def last_result(self, check: str) -> CheckResult | None:
        s = self.states.get(check)
        if s is None:
            return None
        down = s.state is AlertState.DOWN
        return CheckResult(check, "http", Outcome.DOWN if down else Outcome.UP,
                           FailureKind.HTTP_STATUS if down else None,
                           "expected status 2xx, got 503" if down else "200 OK",
                           NOW - timedelta(seconds=20), 0.12)  # fmt: skip

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        at = (NOW - timedelta(seconds=20)).isoformat(timespec="seconds")
        return [{"at": at, "outcome": "up", "duration_ms": 120.0}] * 30


def fill(path: Path, checks: int, days: int) -> float:
    """Hour rows for every check and hour of `days` days, written by SQLite itself."""
    t = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("CREATE TEMP TABLE names (n INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO names VALUES (?, ?)", [(n, name(n)) for n in range(checks)])
    end = int(NOW.timestamp()) - int(NOW.timestamp()) % HOUR
    db.execute(
        """
        WITH RECURSIVE hours(h) AS (SELECT ? UNION ALL SELECT h - 3600 FROM hours WHERE h > ?)
        INSERT INTO history
        SELECT name, 3600, h, 60 - down, 0, down, blind, 120.0 * (60 - blind), 480.0,
               2, 50 - blind, 6, 2, 0, 0, 0, 0
        FROM (SELECT name, h,
                     CASE WHEN abs(random()) % 400 = 0 THEN 12 ELSE 0 END AS down,
                     CASE WHEN abs(random()) % 900 = 0 THEN 30 ELSE 0 END AS blind
              FROM names CROSS JOIN hours)
        """,
        (end, end - (days * 24 - 1) * HOUR),
    )
    db.commit()
    db.close()
    return time.perf_counter() - t


def incidents(checks: int) -> list[Incident]:
    out = []
    for n in range(300):
        opened = NOW - timedelta(hours=7 * n + 5)
        out.append(Incident(
            id=0, key=f"{name(n * 31 % checks)}#{n}", title=f"{name(n * 31 % checks)} is down",
            status=IncidentStatus.RESOLVED, severity=(Severity.P1, Severity.P2)[n % 2],
            opened_at=opened, updated_at=opened + timedelta(minutes=40), check=name(n * 31 % checks),
            resolved_at=opened + timedelta(minutes=40),
            public_note="Elevated error rates on the registry mirror; resolved." if n % 3 else None,
        ))  # fmt: skip
    return out


def timed(render: Callable[[], str], repeat: int) -> tuple[int, float, float]:
    """Bytes, and the median wall and CPU time (ms) of `repeat` renders."""
    wall, cpu, size = [], [], 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        page = render()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        size = len(page.encode())
    return size, statistics.median(wall) * 1000, statistics.median(cpu) * 1000


async def main(checks: int, days: int, repeat: int, db: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "monitor.sqlite3"
        if not path.exists():
            store = SqliteStore(path)
            await store.open()
            for i in incidents(checks):
                await store.create_incident(i, [])
            await store.close()
            filled = fill(path, checks, days)
            print(f"history written in {filled:.0f} s")
        size_mb = path.stat().st_size / 1e6
        print(f"history: {checks} checks x {days} days of hour rows, {size_mb:.0f} MB")
        store = SqliteStore(path)
        await store.open()
        clock = Clock()
        configs = [
            HttpCheckConfig(name=name(n), kind="http", url=f"https://{name(n)}.test/",
                            tags=[f"group-{n % GROUPS:02d}"],
                            description=f"asset {n} of the project").resolved(Defaults())
            for n in range(checks)
        ]  # fmt: skip
        summaries = Summaries(store, clock, lambda: [c.name for c in configs])
        t, cpu = time.perf_counter(), time.process_time()
        await summaries.refresh()
        print(f"summaries, first read: {time.perf_counter() - t:.1f} s "
              f"(CPU {time.process_time() - cpu:.1f} s)")  # fmt: skip
        clock.t += timedelta(minutes=1)
        t, cpu = time.perf_counter(), time.process_time()
        await summaries.refresh()
        print(f"summaries, refresh a minute later: {time.perf_counter() - t:.2f} s "
              f"(CPU {time.process_time() - cpu:.2f} s)")  # fmt: skip
        kept = sum(len(s.days) * 4 + len(s.hours) * 4 for s in summaries.by_check.values())
        print(f"summaries in memory: {kept / 1e6:.1f} MB of figures (arrays)")
        view = StatusView("Project assets", clock, lambda: configs, Readings(checks), None,
                          summaries=summaries)  # fmt: skip
        pages = {
            "/ (first page, 50 assets)": PageQuery(),
            "/?per_page=100": PageQuery(per_page=100),
            "/?page=100 (a middle page)": PageQuery(page=100),
            "/?state=failing": PageQuery(state="failing"),
            "/?q=check-012 (search)": PageQuery(q="check-012"),
            "/?group=group-07": PageQuery(group="group-07"),
        }
        print(f"\n| page ({checks} checks) | bytes | render, wall | render, CPU |")
        print("|---|---|---|---|")
        for label, query in pages.items():
            size, ms, cpu_ms = timed(lambda q=query: render_html(view.page(q)), repeat)  # type: ignore[misc]
            print(f"| `{label}` | {size:,} | {ms:.1f} ms | {cpu_ms:.1f} ms |")
        size, ms, cpu_ms = timed(lambda: render_asset(view.asset(name(7)) or {}), repeat)
        print(f"| `/assets/{name(7)}` | {size:,} | {ms:.1f} ms | {cpu_ms:.1f} ms |")
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", type=Path, help="keep the store here, and reuse it if it exists")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    asyncio.run(main(args.checks, args.days, args.repeat, args.db))
