"""What a replica's writes to PostgreSQL cost it in CPU, against the same work on SQLite.

    python3 bench/store_writes.py [--checks 1300] [--runs 123] [--repeat 200]

Starts a private PostgreSQL cluster (as `tests/postgres.py` does: initdb and pg_ctl, its
own port and socket directory) and measures this process's CPU (`time.process_time`),
not the server's:

- a history flush: one finished minute of `--checks` checks (a minute row and an hour
  row each), through `PostgresStore.add_history` and `SqliteStore.add_history`;
- a replica's beat with `--runs` runs and as many readings: the three calls it took
  (`beat_replica`, `record_runs`, `save_readings`; the claim of gone replicas was a
  fourth) against the one statement that carries them all (`beat_and_record`);
- one check reading as text (`Reading.to_text`), against `json.dumps` of the same
  document built as objects (`Reading.to_doc`), which is how it was written before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import CheckResult, Outcome
from monitor.engine.fleetview import Reading
from monitor.engine.history import RUNS, RunHistory
from monitor.store.base import LATENCY_BOUNDS_MS, MINUTE, HistoryBucket
from monitor.store.postgres import PostgresStore
from monitor.store.replicas import ReplicaId
from monitor.store.sqlite import SqliteStore
from tests.postgres import private_cluster


def minute(checks: int, start: int) -> list[HistoryBucket]:
    latency = (6,) + (0,) * len(LATENCY_BOUNDS_MS)
    return [
        HistoryBucket(f"c{i:05d}", MINUTE, start, 6, 0, 0, 0, 12.5, 3.1, latency)
        for i in range(checks)
    ]


def reading(check: str) -> Reading:
    now = datetime.now(UTC)
    result = CheckResult(check, "http", Outcome.UP, None, "HTTP 200 in 3 ms", now, 0.003)
    runs = RunHistory()
    for _ in range(RUNS):
        runs.add(result)
    return Reading(CheckState(AlertState.UP, now, ups=RUNS, non_downs=RUNS), result, runs)


async def cpu_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    """CPU of this process per call, in milliseconds (the best of three rounds)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(repeat):
            await call()
        best = min(best, (time.process_time() - started) / repeat * 1000)
    return best


async def main(args: argparse.Namespace) -> None:
    rows = [(f"c{i:05d}", reading(f"c{i:05d}").to_text()) for i in range(args.runs)]
    runs = [(f"c{i:05d}", 0.5) for i in range(args.runs)]
    start = 60 * int(time.time() // 60)
    minutes = iter(range(10_000))
    out: dict[str, float] = {}
    with private_cluster() as dsn, tempfile.TemporaryDirectory() as tmp:
        pg, lite = PostgresStore(dsn), SqliteStore(Path(tmp) / "state.db")
        for store in (pg, lite):
            await store.open()
        try:
            for name, store in (("postgresql", pg), ("sqlite", lite)):
                out[f"history flush, {name}"] = await cpu_ms(
                    lambda s=store: s.add_history(minute(args.checks, start + 60 * next(minutes))),
                    max(3, args.repeat // 40),
                )
            me = ReplicaId("bench:1:a", "bench", 1, "1", 5.0, "hash")
            await pg.beat_replica(ReplicaId("bench:2:b", "bench", 2, "1", 5.0, "hash"))

            async def three_calls() -> None:
                await pg.beat_replica(me)
                await pg.record_runs(me.id, runs)
                await pg.save_readings(me.id, rows)

            out["beat, three calls"] = await cpu_ms(three_calls, args.repeat)
            if hasattr(pg, "beat_and_record"):  # a tree from before it measures the rest
                out["beat, one statement"] = await cpu_ms(
                    lambda: pg.beat_and_record(me, runs, rows, 5.0), args.repeat
                )
        finally:
            for store in (pg, lite):
                await store.close()
    one = reading("c00001")
    n = 20_000
    out["reading as text (µs)"] = timeit.timeit(one.to_text, number=n) / n * 1e6
    if hasattr(one, "to_doc"):
        out["reading through json.dumps (µs)"] = (
            timeit.timeit(lambda: json.dumps(one.to_doc(), separators=(",", ":")), number=n)
            / n
            * 1e6
        )
    width = max(map(len, out))
    print(f"{args.checks} checks a history flush, {args.runs} runs and readings a beat")
    for label, value in out.items():
        unit = "" if "µs" in label else " ms CPU"
        print(f"{label:<{width}}  {value:8.3f}{unit}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=1300)
    parser.add_argument("--runs", type=int, default=123)
    parser.add_argument("--repeat", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
