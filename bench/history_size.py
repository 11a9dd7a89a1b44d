"""Store growth of run history: writes 30 days of hour rows and 48 h of minute rows (as the
daemon leaves them, pruned as it prunes) for `--checks` checks into a fresh SQLite file,
vacuums it, and prints the rows and bytes per check and per 1,000 checks.

    python3 bench/history_size.py --checks 100
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
from pathlib import Path

from monitor.store.base import HOUR, MINUTE, HistoryBucket
from monitor.store.sqlite import SqliteStore

DAYS = 30


async def fill(path: Path, checks: int) -> None:
    store = SqliteStore(path)
    await store.open()
    now = 1_795_000_000 - 1_795_000_000 % HOUR
    latency = (0, 2, 0, 0, 0, 0, 0, 0)
    try:
        for hour in range(now - DAYS * 24 * HOUR, now, HOUR):
            await store.add_history([
                HistoryBucket(f"check-{c:05d}-example", MINUTE, m, up=2, sum_ms=240.5,
                              max_ms=130.2, latency=latency)
                for c in range(checks) for m in range(hour, hour + HOUR, MINUTE)
            ])  # fmt: skip
            await store.prune_history(hour + HOUR)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=100)
    checks = parser.parse_args().checks
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.sqlite3"
        asyncio.run(fill(path, checks))
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


if __name__ == "__main__":
    main()
