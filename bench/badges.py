"""What a badge costs: the uptime figure of one check and of a group of `--checks` checks
over each window, from a SQLite store holding `--days` days of hour rows for each check
(as the daemon keeps them), and rendering one SVG. Wall time of the first computation
(the one a cached badge skips), best of `--repeat`.

    PYTHONPATH=$PWD python3 bench/badges.py --checks 1000 --days 90
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.store.base import HOUR
from monitor.store.sqlite import SqliteStore
from monitor.web.badges import BadgeApi, render_badge


def fill(path: Path, checks: int, days: int, now: int) -> None:
    """Hour rows straight into the table (the store's own writes are measured elsewhere)."""
    this_hour = now - now % HOUR
    with sqlite3.connect(path) as db:
        for c in range(checks):
            db.executemany(
                "INSERT INTO history VALUES (?, ?, ?, 120, 0, 0, 0, 14400.0, 130.0,"
                " 118, 2, 0, 0, 0, 0, 0, 0)",
                [(f"check-{c:05d}", HOUR, this_hour - h * HOUR) for h in range(days * 24)],
            )


async def main(checks: int, days: int, repeat: int) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.sqlite3"
        store = SqliteStore(path)
        await store.open()
        fill(path, checks, days, int(clock.now().timestamp()))
        configs = [
            HttpCheckConfig(name=f"check-{c:05d}", kind="http", url="https://x.test/", group="all")
            .resolved(Defaults())
            for c in range(checks)
        ]  # fmt: skip
        names = [c.name for c in configs]
        print(f"{checks} checks, {days} days of hour rows ({checks * days * 24:,} rows)")
        for window in ("24h", "7d", "30d", "90d"):
            for kind, members in (("check", names[:1]), ("group", names)):
                best = float("inf")
                for _ in range(repeat):
                    api = BadgeApi(lambda: configs, None, store, clock)  # type: ignore[arg-type]
                    t = time.perf_counter()
                    await api.uptime(kind, "x", members, window)
                    best = min(best, time.perf_counter() - t)
                print(
                    f"  uptime {window:>3} of {kind} ({len(members)} checks): {best * 1000:9.2f} ms"
                )
        t = time.perf_counter()
        for _ in range(10_000):
            render_badge("npm-winglang", "99.95%", "#4c1")
        print(f"  render one badge: {(time.perf_counter() - t) * 100:.1f} µs")
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.checks, args.days, args.repeat))
