"""Store growth of run history: writes 30 days of hour rows and 48 h of minute rows (as the
daemon leaves them, pruned as it prunes) for `--checks` checks into a fresh SQLite file,
vacuums it, and prints the rows and bytes per check and per 1,000 checks, and the CPU time
of the writes per minute bucket written (with the hour rows derived from it).

    python3 bench/history_size.py --checks 100
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from monitor.store.base import HOUR, MINUTE, HistoryBucket
from monitor.store.sqlite import SqliteStore

DAYS = 30


async def fill(path: Path, checks: int) -> tuple[float, int]:
    store = SqliteStore(path)
    await store.open()
    now = 1_795_000_000 - 1_795_000_000 % HOUR
    latency = (0, 2, 0, 0, 0, 0, 0, 0)
    cpu, written = 0.0, 0
    try:
        for hour in range(now - DAYS * 24 * HOUR, now, HOUR):
            batch = [
                HistoryBucket(f"check-{c:05d}-example", MINUTE, m, up=2, sum_ms=240.5,
                              max_ms=130.2, latency=latency)
                for c in range(checks) for m in range(hour, hour + HOUR, MINUTE)
            ]  # fmt: skip
            t = time.process_time()
            await store.add_history(batch)
            cpu += time.process_time() - t
            written += len(batch)
            await store.prune_history(hour + HOUR)
    finally:
        await store.close()
    return cpu, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=100)
    checks = parser.parse_args().checks
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.sqlite3"
        cpu, written = asyncio.run(fill(path, checks))
        db = sqlite3.connect(path)
        rows = dict(db.execute("SELECT resolution, COUNT(*) FROM history GROUP BY resolution"))
        db.execute("VACUUM")
        db.close()
        size = path.stat().st_size
    total = sum(rows.values())
    print(f"minute rows per check: {rows.get(MINUTE, 0) // checks}")
    print(f"hour rows per check: {rows.get(HOUR, 0) // checks}")
    print(f"file: {size} bytes, {size / total:.0f} bytes a row (with the schema and indexes)")
    print(f"per 1,000 checks after {DAYS} days: {size * 1000 / checks / 1e6:.0f} MB")
    print(f"write CPU: {cpu * 1e6 / written:.1f} µs per minute bucket written")


if __name__ == "__main__":
    main()
