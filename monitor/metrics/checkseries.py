"""Per-check metric series, kept compact and written out fast.

prometheus_client keeps every labelled child as objects with a lock per value: about 75
of them per HTTP check (runs, attempts, state set, two histograms), which at 10,000
checks costs hundreds of megabytes, seconds of start-up and a 20-second scrape. Here one
object per check holds plain floats and two small arrays; everything runs on the event
loop, so nothing needs a lock. `render()` writes the text exposition format directly and
yields to the loop every few hundred checks, so a scrape never stalls the probes.

The families and their names are those the daemon has always exported (docs/operations.md, Metrics).
`value()` reads one sample, for tests and for code that needs a number back.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

from monitor.core.alertstate import AlertState
from monitor.core.model import CheckResult, Outcome

__all__ = ["DURATION_BUCKETS", "PHASES", "PHASE_BUCKETS", "CheckSeries", "CheckSeriesSet"]

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PHASE_BUCKETS: Final = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0)
PHASES: Final = ("dns", "connect", "tls", "first_byte", "transfer")
_OUTCOMES: Final = (Outcome.UP, Outcome.DEGRADED, Outcome.DOWN)
_OUTCOME_INDEX: Final = {o: i for i, o in enumerate(_OUTCOMES)}
_STATES: Final = tuple(AlertState)
_PHASE_INDEX: Final = {p: i for i, p in enumerate(PHASES)}
_DW: Final = len(DURATION_BUCKETS) + 2  # bucket counts, +Inf, sum
_PW: Final = len(PHASE_BUCKETS) + 2


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _le(bound: float) -> str:
    return repr(float(bound))


_DURATION_LE: Final = (*(_le(b) for b in DURATION_BUCKETS), "+Inf")
_PHASE_LE: Final = (*(_le(b) for b in PHASE_BUCKETS), "+Inf")


class CheckSeries:
    """Every per-check series of one check."""

    __slots__ = ("attempts", "check", "duration", "failures", "kind", "labels",
                 "last_success", "phases", "runs", "skipped", "state", "up")  # fmt: skip

    def __init__(self, check: str, kind: str) -> None:
        self.check, self.kind = check, kind
        self.labels = f'check="{_escape(check)}",kind="{_escape(kind)}"'
        self.runs = [0.0, 0.0, 0.0]  # by outcome: up, degraded, down
        self.attempts = 0.0
        self.failures: dict[str, float] | None = None  # by failure kind, once one happens
        self.up: float | None = None  # raw result of the last run; None before the first
        self.last_success: float | None = None
        self.state = AlertState.UNKNOWN
        self.duration = array("d", bytes(8 * _DW))  # per-bucket counts (not cumulative), +Inf, sum
        self.phases: array[float] | None = None  # the same, per phase, for checks that have them
        self.skipped = 0.0

    def record(self, result: CheckResult, phases: bool = True) -> None:
        """Counts one run; `phases`: also its HTTP phase times."""
        self.runs[_OUTCOME_INDEX[result.outcome]] += 1
        self.attempts += result.attempts
        d = self.duration
        d[bisect_left(DURATION_BUCKETS, result.duration_s)] += 1
        d[_DW - 1] += result.duration_s
        if result.failure is not None:
            failures = self.failures
            if failures is None:
                failures = self.failures = {}
            key = result.failure.value
            failures[key] = failures.get(key, 0.0) + 1
        if result.outcome is Outcome.UP:
            self.up = 1.0
            self.last_success = result.started_at.timestamp()
        else:
            self.up = 0.0
        if phases and result.phases:
            p = self.phases
            if p is None:
                p = self.phases = array("d", bytes(8 * _PW * len(PHASES)))
            for phase, seconds in result.phases.items():
                i = _PHASE_INDEX.get(phase)
                if i is not None:
                    base = i * _PW
                    p[base + bisect_left(PHASE_BUCKETS, seconds)] += 1
                    p[base + _PW - 1] += seconds


_Lines = Callable[[CheckSeries], Iterator[str]]


def _runs(s: CheckSeries) -> Iterator[str]:
    for outcome, n in zip(_OUTCOMES, s.runs, strict=True):
        yield f'monitor_check_runs_total{{{s.labels},outcome="{outcome.value}"}} {n!r}\n'


def _failures(s: CheckSeries) -> Iterator[str]:
    for failure, n in (s.failures or {}).items():
        yield f'monitor_check_failures_total{{{s.labels},failure="{failure}"}} {n!r}\n'


def _attempts(s: CheckSeries) -> Iterator[str]:
    yield f"monitor_check_attempts_total{{{s.labels}}} {s.attempts!r}\n"


def _up(s: CheckSeries) -> Iterator[str]:
    if s.up is not None:
        yield f"monitor_check_up{{{s.labels}}} {s.up!r}\n"


def _state(s: CheckSeries) -> Iterator[str]:
    for state in _STATES:
        yield f'monitor_check_alert_state{{{s.labels},state="{state.value}"}} {1.0 if state is s.state else 0.0!r}\n'


def _histogram(
    name: str, labels: str, values: array[float], start: int, les: tuple[str, ...]
) -> Iterator[str]:
    total = 0.0
    for i, le in enumerate(les):
        total += values[start + i]
        yield f'{name}_bucket{{{labels},le="{le}"}} {total!r}\n'
    yield f"{name}_count{{{labels}}} {total!r}\n"
    yield f"{name}_sum{{{labels}}} {values[start + len(les)]!r}\n"


def _duration(s: CheckSeries) -> Iterator[str]:
    yield from _histogram("monitor_check_duration_seconds", s.labels, s.duration, 0, _DURATION_LE)


def _phases(s: CheckSeries) -> Iterator[str]:
    if s.phases is None:
        return
    check = _escape(s.check)
    for i, phase in enumerate(PHASES):
        labels = f'check="{check}",phase="{phase}"'
        yield from _histogram("monitor_http_phase_seconds", labels, s.phases, i * _PW, _PHASE_LE)


def _last_success(s: CheckSeries) -> Iterator[str]:
    if s.last_success is not None:
        yield f"monitor_check_last_success_timestamp_seconds{{{s.labels}}} {s.last_success!r}\n"


def _skipped(s: CheckSeries) -> Iterator[str]:
    yield f'monitor_scheduler_skipped_ticks_total{{check="{_escape(s.check)}"}} {s.skipped!r}\n'


# (name in HELP/TYPE, type, help, lines of one check)
_FAMILIES: Final[tuple[tuple[str, str, str, _Lines], ...]] = (
    ("monitor_check_runs_total", "counter", "Completed check runs by outcome.", _runs),
    ("monitor_check_failures_total", "counter", "Runs that were not up, by failure kind.", _failures),
    ("monitor_check_attempts_total", "counter", "Attempts made, retries included.", _attempts),
    ("monitor_check_up", "gauge", "1 if the last run was up (raw result), else 0.", _up),
    ("monitor_check_alert_state", "gauge", "1 for the check's alert state (after thresholds).", _state),
    ("monitor_check_duration_seconds", "histogram", "Duration of check runs, retries included.", _duration),
    ("monitor_http_phase_seconds", "histogram", "Time per HTTP request phase, summed over redirects.", _phases),
    ("monitor_check_last_success_timestamp_seconds", "gauge", "When the check last ran up.", _last_success),
    ("monitor_scheduler_skipped_ticks_total", "counter", "Ticks skipped because a run overran.", _skipped),
)  # fmt: skip

_CHUNK = 250  # checks written between two yields to the event loop


class CheckSeriesSet:
    """The series of every configured check, by name."""

    def __init__(self) -> None:
        self.series: dict[str, CheckSeries] = {}
        # Whether runs' HTTP phase times are kept (`daemon.phase_histograms`).
        self.phases = True

    def keep_phases(self, keep: bool) -> None:
        """Turns the per-check phase histograms on or off; off drops what they held."""
        self.phases = keep
        if not keep:
            for s in self.series.values():
                s.phases = None

    def record(self, result: CheckResult) -> None:
        self.get(result.check, result.kind).record(result, self.phases)

    def add(self, check: str, kind: str) -> CheckSeries:
        found = self.series.get(check)
        if found is None or found.kind != kind:
            found = self.series[check] = CheckSeries(check, kind)
        return found

    def remove(self, check: str) -> None:
        self.series.pop(check, None)

    def get(self, check: str, kind: str) -> CheckSeries:
        found = self.series.get(check)
        return found if found is not None else self.add(check, kind)

    async def render(self) -> AsyncIterator[str]:
        """The exposition text, family by family, in pieces; yields to the loop between
        pieces so that probes keep their schedule during a scrape of many checks."""
        series = list(self.series.values())
        for name, kind, help_text, lines in _FAMILIES:
            yield f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
            for start in range(0, len(series), _CHUNK):
                yield "".join(line for s in series[start : start + _CHUNK] for line in lines(s))
                if len(series) > _CHUNK:
                    await asyncio.sleep(0)

    def text(self) -> str:
        """All of it at once (for tests and small configs)."""
        parts = []
        series = list(self.series.values())
        for name, kind, help_text, lines in _FAMILIES:
            parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            parts.extend(line for s in series for line in lines(s))
        return "".join(parts)

    def value(self, name: str, labels: dict[str, str]) -> float | None:
        """One sample by its exposition name and labels; None when absent."""
        wanted = {f'{k}="{_escape(v)}"' for k, v in labels.items()}
        for line in self.text().splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            if metric == name and set(rest.rstrip("}").split(",")) == wanted:
                return float(value)
        return None
