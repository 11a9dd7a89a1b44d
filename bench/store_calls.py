"""Round trips of the PostgreSQL store's incident writes, alone on a private cluster:
400 `create_incident` and 400 `update_incident` calls (one timeline line each), one after
the other, timed around each call.

    python3 bench/store_calls.py [ROOT]   # ROOT: the tree whose `monitor` to measure (this one)

Compare two trees (e.g. a worktree of an earlier commit) by running it once with each.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.core.model import Incident, IncidentStatus, Severity, TimelineEntry  # noqa: E402
from monitor.store.postgres import PostgresStore  # noqa: E402
from tests.postgres import private_cluster  # noqa: E402


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    n = len(ms)
    return f"{name}: p50 {ms[n // 2]:.3f} ms, p90 {ms[n * 9 // 10]:.3f}, p99 {ms[n * 99 // 100]:.3f} ({n} calls)"


async def measure(dsn: str) -> None:
    store = PostgresStore(dsn)
    await store.open()
    now = datetime.now(UTC)
    created: list[float] = []
    updated: list[float] = []
    for i in range(400):
        incident = Incident(
            id=0, key=f"k{i}", title="t", status=IncidentStatus.TRIGGERED,
            severity=Severity.P1, opened_at=now, updated_at=now, check=f"k{i}",
        )  # fmt: skip
        entries = [TimelineEntry(0, now, "opened", "monitor", "opened text", {"rule": "r"})]
        t = time.perf_counter()
        made = await store.create_incident(incident, entries)
        created.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        await store.update_incident(made, entries)
        updated.append(1000 * (time.perf_counter() - t))
    await store.close()
    print(
        f"{ROOT}\n  {summary('create_incident', created)}\n  {summary('update_incident', updated)}"
    )


def main() -> None:
    import asyncio

    with private_cluster() as dsn:
        asyncio.run(measure(dsn))


if __name__ == "__main__":
    main()
