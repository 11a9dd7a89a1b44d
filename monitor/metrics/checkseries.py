"""Per-check metric series, kept compact and written out fast.

prometheus_client keeps every labelled child as objects with a lock per value: about 75
of them per HTTP check (runs, attempts, state set, two histograms), which at 10,000
checks costs hundreds of megabytes, seconds of start-up and a 20-second scrape. Here one
object per check holds plain floats and two small arrays; everything runs on the event
loop, so nothing needs a lock. `render()` writes the text exposition format directly and
yields to the loop every few hundred checks, so a scrape never stalls the probes.

The families and their names are those the daemon has always exported (docs/operations.md,
Metrics). Per check, by default, only what a dashboard needs: runs, failures, up, alert
state, last duration and last success. Run timings (duration and HTTP phase histograms),
attempts and skipped ticks are written per kind, one `KindSeries` each, unless
`daemon.phase_histograms: per_check` asks for them per check as well (about 75 series a
check instead of about 11).
`value()` reads one sample, for tests and for code that needs a number back.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final, Literal

from monitor.core.alertstate import AlertState
from monitor.core.model import CheckResult, Outcome

__all__ = [
    "DURATION_BUCKETS", "PHASES", "PHASE_BUCKETS", "CheckSeries", "CheckSeriesSet", "KindSeries",
    "PhaseMode", "phase_mode",
]  # fmt: skip

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

    __slots__ = ("attempts", "check", "duration", "failures", "kind", "labels", "last_duration",
                 "last_success", "phases", "runs", "skipped", "state", "up")  # fmt: skip

    def __init__(self, check: str, kind: str) -> None:
        self.check, self.kind = check, kind
        self.labels = f'check="{_escape(check)}",kind="{_escape(kind)}"'
        self.runs = [0.0, 0.0, 0.0]  # by outcome: up, degraded, down
        self.attempts = 0.0
        self.failures: dict[str, float] | None = None  # by failure kind, once one happens
        self.up: float | None = None  # raw result of the last run; None before the first
        self.last_success: float | None = None
        self.last_duration: float | None = None
        self.state = AlertState.UNKNOWN
        # Per-check histograms, kept only with `phase_histograms: per_check`: per-bucket
        # counts (not cumulative), +Inf, sum; phases the same, one block per phase.
        self.duration: array[float] | None = None
        self.phases: array[float] | None = None
        self.skipped = 0.0

    def record(self, result: CheckResult, detail: bool = True, phases: bool = True) -> None:
        """Counts one run; `detail`: also its duration histogram, and with `phases` its
        HTTP phase times."""
        self.runs[_OUTCOME_INDEX[result.outcome]] += 1
        self.attempts += result.attempts
        self.last_duration = result.duration_s
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
        if detail:
            if self.duration is None:
                self.duration = array("d", bytes(8 * _DW))
            _observe_run(self, result, phases)


class KindSeries:
    """The timing series of all checks of one kind together (the default)."""

    __slots__ = ("attempts", "duration", "kind", "labels", "phases", "skipped")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.labels = f'kind="{_escape(kind)}"'
        self.attempts = 0.0
        self.skipped = 0.0
        self.duration: array[float] | None = array("d", bytes(8 * _DW))
        self.phases: array[float] | None = None

    def record(self, result: CheckResult, phases: bool) -> None:
        self.attempts += result.attempts
        _observe_run(self, result, phases)


def _observe_run(s: CheckSeries | KindSeries, result: CheckResult, phases: bool) -> None:
    d = s.duration
    if d is not None:
        d[bisect_left(DURATION_BUCKETS, result.duration_s)] += 1
        d[_DW - 1] += result.duration_s
    if phases and result.phases:
        p = s.phases
        if p is None:
            p = s.phases = array("d", bytes(8 * _PW * len(PHASES)))
        for phase, seconds in result.phases.items():
            i = _PHASE_INDEX.get(phase)
            if i is not None:
                base = i * _PW
                p[base + bisect_left(PHASE_BUCKETS, seconds)] += 1
                p[base + _PW - 1] += seconds


_Lines = Callable[[CheckSeries], Iterator[str]]
_KindLines = Callable[[KindSeries], Iterator[str]]


def _runs(s: CheckSeries) -> Iterator[str]:
    for outcome, n in zip(_OUTCOMES, s.runs, strict=True):
        yield f'monitor_check_runs_total{{{s.labels},outcome="{outcome.value}"}} {n!r}\n'


def _failures(s: CheckSeries) -> Iterator[str]:
    for failure, n in (s.failures or {}).items():
        yield f'monitor_check_failures_total{{{s.labels},failure="{failure}"}} {n!r}\n'


def _attempts(s: CheckSeries | KindSeries) -> Iterator[str]:
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


def _duration(s: CheckSeries | KindSeries) -> Iterator[str]:
    if s.duration is not None:
        yield from _histogram(
            "monitor_check_duration_seconds", s.labels, s.duration, 0, _DURATION_LE
        )


def _last_duration(s: CheckSeries) -> Iterator[str]:
    if s.last_duration is not None:
        yield f"monitor_check_last_duration_seconds{{{s.labels}}} {s.last_duration!r}\n"


def _phases(s: CheckSeries) -> Iterator[str]:
    if s.phases is None:
        return
    check = _escape(s.check)
    for i, phase in enumerate(PHASES):
        labels = f'check="{check}",phase="{phase}"'
        yield from _histogram("monitor_http_phase_seconds", labels, s.phases, i * _PW, _PHASE_LE)


def _kind_phases(k: KindSeries) -> Iterator[str]:
    if k.phases is None:
        return
    for i, phase in enumerate(PHASES):
        labels = f'{k.labels},phase="{phase}"'
        yield from _histogram("monitor_http_phase_seconds", labels, k.phases, i * _PW, _PHASE_LE)


def _last_success(s: CheckSeries) -> Iterator[str]:
    if s.last_success is not None:
        yield f"monitor_check_last_success_timestamp_seconds{{{s.labels}}} {s.last_success!r}\n"


def _skipped(s: CheckSeries) -> Iterator[str]:
    yield f'monitor_scheduler_skipped_ticks_total{{check="{_escape(s.check)}"}} {s.skipped!r}\n'


def _kind_skipped(k: KindSeries) -> Iterator[str]:
    yield f"monitor_scheduler_skipped_ticks_total{{{k.labels}}} {k.skipped!r}\n"


# (name in HELP/TYPE, type, help, lines of one check, lines of one kind). A family with
# lines per kind is written per check only with `phase_histograms: per_check`.
_FAMILIES: Final[tuple[tuple[str, str, str, _Lines, _KindLines | None], ...]] = (
    ("monitor_check_runs_total", "counter", "Completed check runs by outcome.", _runs, None),
    ("monitor_check_failures_total", "counter", "Runs that were not up, by failure kind.", _failures, None),
    ("monitor_check_attempts_total", "counter", "Attempts made, retries included.", _attempts, _attempts),
    ("monitor_check_up", "gauge", "1 if the last run was up (raw result), else 0.", _up, None),
    ("monitor_check_alert_state", "gauge", "1 for the check's alert state (after thresholds).", _state, None),
    ("monitor_check_last_duration_seconds", "gauge", "Duration of the last run, retries included.", _last_duration, None),
    ("monitor_check_duration_seconds", "histogram", "Duration of check runs, retries included.", _duration, _duration),
    ("monitor_http_phase_seconds", "histogram", "Time per HTTP request phase, summed over redirects.", _phases, _kind_phases),
    ("monitor_check_last_success_timestamp_seconds", "gauge", "When the check last ran up.", _last_success, None),
    ("monitor_scheduler_skipped_ticks_total", "counter", "Ticks skipped because a run overran.", _skipped, _kind_skipped),
)  # fmt: skip

_CHUNK = 250  # checks written between two yields to the event loop


PhaseMode = Literal["off", "per_kind", "per_check"]


def phase_mode(setting: bool | str) -> PhaseMode:
    """`daemon.phase_histograms` as a mode: `true` is the per-check exposition it has
    always meant, `false` no phase histograms at all."""
    if setting is True:
        return "per_check"
    if setting is False or setting == "off":
        return "off"
    return "per_check" if setting == "per_check" else "per_kind"


class CheckSeriesSet:
    """The series of every configured check, by name, and the timing series per kind."""

    def __init__(self) -> None:
        self.series: dict[str, CheckSeries] = {}
        self.kinds: dict[str, KindSeries] = {}
        # Where run timings go (`daemon.phase_histograms`): always into the per-kind
        # series, so that switching the mode on a reload never resets them; per check
        # too with `per_check`. `off` keeps no phase times.
        self.mode: PhaseMode = "per_kind"

    def keep_phases(self, setting: bool | str) -> None:
        """Sets the mode from `daemon.phase_histograms`; per-check histograms are dropped
        unless `per_check`, phase histograms altogether with `off`."""
        self.mode = phase_mode(setting)
        if self.mode != "per_check":
            for s in self.series.values():
                s.duration = s.phases = None
        if self.mode == "off":
            for k in self.kinds.values():
                k.phases = None

    def record(self, result: CheckResult) -> None:
        mode = self.mode
        phases = mode != "off"
        self.get(result.check, result.kind).record(result, mode == "per_check", phases)
        self._kind(result.kind).record(result, phases)

    def skip(self, check: str, kind: str, ticks: int) -> None:
        self.get(check, kind).skipped += ticks
        self._kind(kind).skipped += ticks

    def _kind(self, kind: str) -> KindSeries:
        found = self.kinds.get(kind)
        if found is None:
            found = self.kinds[kind] = KindSeries(kind)
        return found

    def add(self, check: str, kind: str) -> CheckSeries:
        found = self.series.get(check)
        if found is None or found.kind != kind:
            found = self.series[check] = CheckSeries(check, kind)
        self._kind(kind)
        return found

    def remove(self, check: str) -> None:
        self.series.pop(check, None)

    def get(self, check: str, kind: str) -> CheckSeries:
        found = self.series.get(check)
        return found if found is not None else self.add(check, kind)

    def _families(self) -> Iterator[tuple[str, str, str, _Lines, _KindLines | None]]:
        """Each family with its lines per check, and per kind when it is written per kind."""
        per_check = self.mode == "per_check"
        for name, kind, help_text, check_lines, kind_lines in _FAMILIES:
            yield name, kind, help_text, check_lines, None if per_check else kind_lines

    async def render(self) -> AsyncIterator[str]:
        """The exposition text, family by family, in pieces; yields to the loop between
        pieces so that probes keep their schedule during a scrape of many checks."""
        series = list(self.series.values())
        kinds = list(self.kinds.values())
        for name, kind, help_text, lines, kind_lines in self._families():
            yield f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
            if kind_lines is not None:
                yield "".join(line for k in kinds for line in kind_lines(k))
                continue
            for start in range(0, len(series), _CHUNK):
                yield "".join(line for s in series[start : start + _CHUNK] for line in lines(s))
                if len(series) > _CHUNK:
                    await asyncio.sleep(0)

    def text(self) -> str:
        """All of it at once (for tests and small configs)."""
        parts = []
        series = list(self.series.values())
        kinds = list(self.kinds.values())
        for name, kind, help_text, lines, kind_lines in self._families():
            parts.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            if kind_lines is not None:
                parts.extend(line for k in kinds for line in kind_lines(k))
            else:
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
