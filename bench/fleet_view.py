"""CPU of one replica's fleet view reading the others' rows, as a beat does in a fleet
of 3 replicas with 3,000 checks at 10 s: each beat (1 s) the store sends the rows written
in the last 4 s (1 s since the last read and its 3 s overlap for late commits), 800 rows
of which 200 are new (the 2,000 checks the other two replicas own, each written once in
10 s), each with its last 30 runs. No database: a store in memory sends the
rows, so what is timed is the replica's own work.

    python3 bench/fleet_view.py [ROOT]   # ROOT: the tree whose `monitor` to measure (this one)

Compare two trees (e.g. a worktree of an earlier commit) by running it once with each.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.core.alertstate import AlertState, CheckState  # noqa: E402
from monitor.core.clock import SystemClock  # noqa: E402
from monitor.core.configtypes import CheckConfigBase  # noqa: E402
from monitor.core.model import CheckResult, Outcome  # noqa: E402
from monitor.engine.fleetview import FleetView, Reading  # noqa: E402

CHECKS, OTHERS, INTERVAL, OVERLAP, BEATS = 3000, 2000, 10, 4, 60


class Rows:
    """The others' rows: each of their checks rewritten once an interval."""

    def __init__(self) -> None:
        self.t0 = datetime.now(UTC)
        self.beat = 0
        self.written: dict[str, tuple[int, str]] = {}

    def advance(self) -> None:
        self.beat += 1
        per_beat = OTHERS // INTERVAL
        start = (self.beat % INTERVAL) * per_beat
        at = self.t0 + timedelta(seconds=self.beat)
        for i in range(start, start + per_beat):
            name = f"c{i:05d}"
            runs = [{"at": (at - timedelta(seconds=INTERVAL * k)).isoformat(), "outcome": "up",
                     "duration_ms": 1.25} for k in range(30)]  # fmt: skip
            result = CheckResult(name, "http", Outcome.UP, None, "200 OK", at, 0.00125)
            reading = Reading(CheckState(AlertState.UP, self.t0, ups=self.beat), result, runs)
            self.written[name] = (self.beat, reading.to_text())

    async def load_readings(
        self, since: float | None, *, other_than: str | None = None
    ) -> tuple[float, dict[str, str]]:
        return float(self.beat), {
            c: text for c, (b, text) in self.written.items() if b > self.beat - OVERLAP
        }

    async def save_readings(self, replica_id: str, readings: Sequence[tuple[str, str]]) -> None:
        return None


class Nothing:
    def state(self, check: str) -> None:
        return None

    def last_result(self, check: str) -> None:
        return None

    def recent_runs(self, check: str) -> list[object]:
        return []


async def main() -> None:
    rows = Rows()
    configs = [CheckConfigBase(name=f"c{i:05d}", kind="http") for i in range(CHECKS)]
    view = FleetView(rows, "me", SystemClock(), Nothing(), lambda n: False,  # type: ignore[arg-type]
                     lambda: configs, beat_s=1.0)  # fmt: skip
    for _ in range(INTERVAL):  # every row written once, read once: the steady state
        rows.advance()
        await view.beat()
    cpu: list[float] = []
    for _ in range(BEATS):
        rows.advance()
        t0 = time.process_time()
        await view.beat()
        cpu.append((time.process_time() - t0) * 1000)
    cpu.sort()
    sent = len((await rows.load_readings(None))[1])
    print(
        f"{ROOT}: {sent} rows sent a beat; CPU per beat p50 {cpu[len(cpu) // 2]:.1f} ms,"
        f" max {cpu[-1]:.1f} ms ({BEATS} beats)"
    )


if __name__ == "__main__":
    asyncio.run(main())
