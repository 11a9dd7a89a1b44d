"""The cost of SLO evaluation: one `SloEvaluator.evaluate()` round over N objectives
with full rings (a 30-day window of hours and 6 hours of minutes each), and the memory
the rings take. Pure CPU, no store reads past the first round.

    PYTHONPATH=$PWD python3 bench/slo.py [--objectives 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from monitor.core.configtypes import SloConfig
from monitor.engine.history import Rollups
from monitor.engine.slo import Objective, SloEvaluator
from monitor.metrics.exporter import Metrics
from monitor.store.base import HOUR, MINUTE, HistoryBucket
from tests.fakes import FakeClock, MemoryStore

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


async def main(n: int, rounds: int) -> None:
    clock, rollups = FakeClock(T0), Rollups()
    evaluator = SloEvaluator(MemoryStore(), clock, Metrics(CollectorRegistry()).slo, rollups)
    slo = SloConfig.model_validate({"target": "99.9%", "window": "30d"})
    evaluator.configure([Objective(f"c{i}", "check", slo, (f"c{i}",), "http") for i in range(n)])
    tracemalloc.start()
    await evaluator.evaluate()  # empty store: every objective starts with empty rings
    now = int(T0.timestamp())
    # Fill every slot of every ring, as 30 days of history would.
    evaluator.stored([HistoryBucket(f"c{i}", MINUTE, now - m * MINUTE, up=2, down=0)
                      for i in range(n) for m in range(360)])  # fmt: skip
    evaluator.stored([HistoryBucket(f"c{i}", MINUTE, now - h * HOUR - 7 * HOUR, up=120)
                      for i in range(n) for h in range(720)])  # fmt: skip
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await evaluator.evaluate()
        times.append(time.perf_counter() - start)
    best, median = min(times), sorted(times)[len(times) // 2]
    print(f"{n:,} objectives (30d, full rings): evaluate() best {best * 1000:.0f} ms, "
          f"median {median * 1000:.0f} ms ({median / n * 1e6:.0f} µs an objective); "
          f"memory after the first round {memory / n / 1024:.1f} KiB an objective")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.objectives, args.rounds))
