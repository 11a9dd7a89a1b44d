"""The recent runs of every check, kept by the pipeline and read by the status page.

`RunHistory` keeps the last `RUNS` results of a check in three fixed arrays (13 bytes a
run), so 10,000 checks cost a few megabytes; `HistoryBook` holds one per check.
`CheckReadings` is what readers (the status page) may ask of the pipeline about a check:
its alert state, its last result and its recent runs, never the dicts behind them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from monitor.core.alertstate import CheckState
from monitor.core.model import CheckResult, Outcome

__all__ = ["RUNS", "CheckReadings", "HistoryBook", "RunHistory"]

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


class HistoryBook:
    """One `RunHistory` per check."""

    __slots__ = ("by_check",)

    def __init__(self) -> None:
        self.by_check: dict[str, RunHistory] = {}

    def add(self, result: CheckResult, *, blind: bool = False) -> None:
        history = self.by_check.get(result.check)
        if history is None:
            history = self.by_check[result.check] = RunHistory()
        history.add(result, blind=blind)

    def runs(self, check: str) -> list[dict[str, Any]]:
        """The check's recent runs, oldest first (none yet: empty)."""
        history = self.by_check.get(check)
        return history.runs() if history is not None else []

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self.by_check.pop(name, None)


class CheckReadings(Protocol):
    """What the pipeline tells readers about one check, by name."""

    def state(self, check: str) -> CheckState | None:
        """Its alert state; None before its first run (and its stored state)."""
        ...

    def last_result(self, check: str) -> CheckResult | None:
        """Its latest raw result since the start; None before its first run."""
        ...

    def recent_runs(self, check: str) -> list[dict[str, Any]]:
        """Its recent runs, oldest first: `{"at", "outcome", "duration_ms"}`."""
        ...
