"""CPU of one replica's fleet view, in a fleet of 3 replicas with 3,000 checks at 10 s.
No database: a store in memory takes and sends the rows, so what is timed is the
replica's own work.

- **A beat** (1 s): the replica owns 1,000 checks, 100 of which ran since the last beat;
  it writes their readings (alert state, last result, last 30 runs). This is what a
  replica spends every second, asked or not.
- **A request** (the status page, `/api/status`, a badge) a beat after the last one: the
  store sends the others' rows written since the last read and its 3 s overlap for late
  commits, 800 rows of which 200 are new (the 2,000 checks the other two own, each
  written once in 10 s). This is spent only when someone asks, at most once a beat.

    python3 bench/fleet_view.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.core.alertstate import AlertState, CheckState  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.configtypes import CheckConfigBase  # noqa: E402
from monitor.core.model import CheckResult, Outcome  # noqa: E402
from monitor.engine.fleetview import FleetView, Reading  # noqa: E402
from monitor.engine.history import HistoryBook, RunHistory  # noqa: E402

CHECKS, OWNED, INTERVAL, OVERLAP, BEATS = 3000, 1000, 10, 4, 60
T0 = datetime.now(UTC)


def result(name: str, at: datetime) -> CheckResult:
    return CheckResult(name, "http", Outcome.UP, None, "200 OK", at, 0.00125)


class Rows:
    """The store: takes this replica's rows, and sends the others' (each of their checks
    rewritten once an interval)."""

    def __init__(self) -> None:
        self.beat = 0
        self.written: dict[str, tuple[int, str]] = {}
        self.saved = 0

    def advance(self) -> None:
        self.beat += 1
        per_beat = (CHECKS - OWNED) // INTERVAL
        start = OWNED + (self.beat % INTERVAL) * per_beat
        at = T0 + timedelta(seconds=self.beat)
        for i in range(start, start + per_beat):
            name = f"c{i:05d}"
            runs = RunHistory()
            for k in range(30, 0, -1):
                runs.add_run(at.timestamp() - INTERVAL * k, "up", 0.0013)
            reading = Reading(CheckState(AlertState.UP, T0, ups=self.beat), result(name, at), runs)
            self.written[name] = (self.beat, reading.to_text())

    async def load_readings(
        self, since: float | None, *, other_than: str | None = None
    ) -> tuple[float, dict[str, str]]:
        return float(self.beat), {
            c: text for c, (b, text) in self.written.items() if b > self.beat - OVERLAP
        }

    async def save_readings(self, replica_id: str, readings: Sequence[tuple[str, str]]) -> None:
        self.saved += len(readings)


class Pipeline:
    """This replica's own: 1,000 checks, each with 30 runs behind it."""

    def __init__(self) -> None:
        self.runs = HistoryBook()
        self.last: dict[str, CheckResult] = {}
        self.steady = CheckState(AlertState.UP, T0, ups=30)

    def ran(self, name: str, at: datetime) -> None:
        self.last[name] = r = result(name, at)
        self.runs.add(r)

    def state(self, check: str) -> CheckState | None:
        return self.steady

    def last_result(self, check: str) -> CheckResult | None:
        return self.last.get(check)

    def recent_runs(self, check: str) -> list[dict[str, object]]:
        return self.runs.runs(check)

    def run_history(self, check: str) -> RunHistory | None:
        return self.runs.by_check.get(check)


async def main() -> None:
    rows, pipeline = Rows(), Pipeline()
    configs = {f"c{i:05d}": CheckConfigBase(name=f"c{i:05d}", kind="http") for i in range(CHECKS)}
    owned = {f"c{i:05d}" for i in range(OWNED)}
    view = FleetView(rows, "me", SystemClock(), pipeline, owned.__contains__,  # type: ignore[arg-type]
                     lambda: list(configs.values()), beat_s=0.0)  # fmt: skip

    async def nothing(_config: CheckConfigBase, _result: CheckResult) -> None:
        return None

    sink = view.recording(nothing)
    for k in range(30):  # 30 runs behind every owned check
        for name in owned:
            pipeline.ran(name, T0 + timedelta(seconds=INTERVAL * k))
    write: list[float] = []
    read: list[float] = []
    for b in range(INTERVAL + BEATS):  # the first interval: every row read once, untimed
        rows.advance()
        per_beat = OWNED // INTERVAL
        at = T0 + timedelta(seconds=INTERVAL * 30 + b)
        for i in range((b % INTERVAL) * per_beat, (b % INTERVAL + 1) * per_beat):
            name = f"c{i:05d}"
            pipeline.ran(name, at)
            await sink(configs[name], pipeline.last[name])
        t0 = time.process_time()
        await view.beat()
        t1 = time.process_time()
        await view.current()
        t2 = time.process_time()
        if b >= INTERVAL:
            write.append((t1 - t0) * 1000)
            read.append((t2 - t1) * 1000)
    write.sort()
    read.sort()
    sent = len((await rows.load_readings(rows.beat - 1.0))[1])
    print(
        f"a beat: {OWNED // INTERVAL} readings written, CPU p50 {write[len(write) // 2]:.2f} ms,"
        f" max {write[-1]:.2f} ms\n"
        f"a request: {sent} rows sent, CPU p50 {read[len(read) // 2]:.2f} ms,"
        f" max {read[-1]:.2f} ms ({BEATS} of each)"
    )


if __name__ == "__main__":
    asyncio.run(main())
