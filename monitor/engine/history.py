"""The recent runs of every check, kept by the pipeline and read by the status page.

`RunHistory` keeps the last `RUNS` results of a check in three fixed arrays (13 bytes a
run), so 10,000 checks cost a few megabytes.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime
from typing import Any

from monitor.core.model import CheckResult, Outcome

__all__ = ["RUNS", "RunHistory"]

RUNS = 30  # bars per asset
_CODES = {Outcome.UP: 1, Outcome.DEGRADED: 2, Outcome.DOWN: 3}
_NAMES = {1: "up", 2: "degraded", 3: "down", 4: "blind"}
_BLIND = 4  # a run that could not observe the asset


class RunHistory:
    """The last `RUNS` runs of one check: outcome, start time and duration."""

    __slots__ = ("_at", "_durations", "_next", "_outcomes")

    def __init__(self) -> None:
        self._outcomes = bytearray(RUNS)  # 0: empty slot
        self._at = array("d", bytes(8 * RUNS))
        self._durations = array("f", bytes(4 * RUNS))
        self._next = 0

    def add(self, result: CheckResult, *, blind: bool = False) -> None:
        i = self._next
        self._outcomes[i] = _BLIND if blind else _CODES[result.outcome]
        self._at[i] = result.started_at.timestamp()
        self._durations[i] = result.duration_s
        self._next = (i + 1) % RUNS

    def runs(self) -> list[dict[str, Any]]:
        """Oldest first."""
        order = [*range(self._next, RUNS), *range(self._next)]
        return [
            {
                "at": datetime.fromtimestamp(self._at[i], UTC).isoformat(timespec="seconds"),
                "outcome": _NAMES[self._outcomes[i]],
                "duration_ms": round(self._durations[i] * 1000, 1),
            }
            for i in order
            if self._outcomes[i]
        ]
