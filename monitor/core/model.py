"""Values that flow through the pipeline: what a probe saw and what it concluded.

A check's `run()` returns an `Observation`; the scheduler adds the name, timing and
attempt count to make the `CheckResult` that the rest of the pipeline consumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "EMPTY",
    "MAX_MESSAGE",
    "CheckResult",
    "EscalationMode",
    "EscalationState",
    "FailureKind",
    "Incident",
    "IncidentEvent",
    "IncidentSource",
    "IncidentStatus",
    "Observation",
    "OutboxItem",
    "OutboxStatus",
    "Outcome",
    "Severity",
    "Silence",
    "Suppression",
    "SuppressionKind",
    "TimelineEntry",
    "bound_message",
]

EMPTY: Mapping[str, Any] = MappingProxyType({})


class Outcome(StrEnum):
    """What one run concluded. DEGRADED is a soft failure (slow, certificate expiring)."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class FailureKind(StrEnum):
    """Machine-readable reason a run was not UP; rules match on these values."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TLS_EXPIRING = "tls_expiring"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    REDIRECTS = "redirects"
    PROTOCOL = "protocol"
    HTTP_STATUS = "http_status"
    CONTENT = "content"
    SLOW = "slow"
    SCHEMA = "schema"
    RATE_LIMITED = "rate_limited"
    STALE = "stale"
    VERSION_SKEW = "version_skew"
    # Answers from package registries and APIs.
    UNAVAILABLE = "unavailable"  # the upstream could not answer: 5xx, timeout, no connection
    AUTH = "auth"  # 401/403 that is not a rate limit
    NOT_FOUND = "not_found"  # the package, extension or workflow does not exist
    TAG_MISSING = "tag_missing"  # npm: the dist-tag or its version is absent
    TARBALL = "tarball"  # npm: the tarball cannot be downloaded
    INTEGRITY = "integrity"  # npm: the tarball does not match its integrity/shasum
    DEPRECATED = "deprecated"  # npm, Open VSX: the current version is deprecated
    UNPUBLISHED = "unpublished"  # marketplace: listed but cannot be installed
    WORKFLOW_DISABLED = "workflow_disabled"  # GitHub Actions: disabled (inactivity/manually)
    RUN_FAILED = "run_failed"  # GitHub Actions: latest run(s) failed
    FAILURE_RATE = "failure_rate"  # GitHub Actions: too many failed runs in the window
    UPSTREAM_DEGRADED = "upstream_degraded"  # a status page reports a component degraded
    MONITOR_RESOURCES = "monitor_resources"  # the monitor ran out of its own (e.g. EMFILE)
    SLO_BURN = "slo_burn"  # a check or group spends its error budget too fast (engine.slo)
    UNEXPECTED = "unexpected"


@dataclass(frozen=True, slots=True)
class Observation:
    """One attempt's conclusion, as a check reports it.

    `details` carries kind-specific facts for pages and the API (status code, final URL,
    redirect chain, certificate expiry...). `phases` holds seconds per request phase.
    """

    outcome: Outcome
    failure: FailureKind | None = None
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    phases: Mapping[str, float] = field(default_factory=lambda: EMPTY)

    @classmethod
    def up(cls, message: str = "ok", **details: Any) -> Observation:
        return cls(Outcome.UP, None, message, details)

    @classmethod
    def down(cls, failure: FailureKind, message: str, **details: Any) -> Observation:
        return cls(Outcome.DOWN, failure, message, details)

    @classmethod
    def degraded(cls, failure: FailureKind, message: str, **details: Any) -> Observation:
        return cls(Outcome.DEGRADED, failure, message, details)


MAX_MESSAGE = 1024
"""Longest result message, in characters; longer ones are cut with an ellipsis."""


def bound_message(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` cut to `limit` characters, the last one an ellipsis."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A completed run of one check, after retries: the raw result the pipeline consumes."""

    check: str
    kind: str
    outcome: Outcome
    failure: FailureKind | None
    message: str
    started_at: datetime
    duration_s: float
    attempts: int = 1
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    phases: Mapping[str, float] = field(default_factory=lambda: EMPTY)

    def __post_init__(self) -> None:
        # Bounded here, where every result is made, so that every surface (log, API,
        # status page, pages, webhooks) is: a 60 KB reason phrase stays 1 KiB.
        if len(self.message) > MAX_MESSAGE:
            object.__setattr__(self, "message", bound_message(self.message))

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.UP

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the keys `check`, `kind`, `ok`, `failure`, `message`,
        `duration_s` are a stable interface (`monitor check --json`)."""
        return {
            "check": self.check,
            "kind": self.kind,
            "ok": self.ok,
            "outcome": self.outcome.value,
            "failure": self.failure.value if self.failure else None,
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 6),
            "attempts": self.attempts,
            "details": _jsonable(self.details),
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
        }


def _jsonable(value: Any) -> Any:
    """Details may hold datetimes and tuples; JSON gets ISO strings and lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class Severity(StrEnum):
    """How bad an incident is; P0 is the worst."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"

    @property
    def rank(self) -> int:
        """0 for P0: lower is worse."""
        return int(self.value[1])

    def worse_than(self, other: Severity | None) -> bool:
        return other is None or self.rank < other.rank


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentSource(StrEnum):
    """Who opened an incident."""

    CHECK = "check"  # a failing check, by a rule
    MANUAL = "manual"  # a person's report
    DRILL = "drill"  # a test of the paging path
    MONITOR_HEALTH = "monitor_health"  # the monitor cannot see (its own limits)


class IncidentEvent(StrEnum):
    """A stored change to an incident, as the incident manager tells its listeners (the
    pager). Each is also the timeline event written for it."""

    OPENED = "opened"
    REOPENED = "reopened"
    TRIAGED = "triaged"  # a person gave an untriaged incident its first severity
    SEVERITY_SET = "severity_set"  # a person changed the severity
    SEVERITY_RAISED = "severity_raised"  # a rule found it worse
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    RETRIGGERED = "retriggered"  # acknowledged too long without a resolve
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ASSIGNED = "assigned"


class SuppressionKind(StrEnum):
    """Why paging is held back, as a bounded label (the metric's `reason`)."""

    MAINTENANCE = "maintenance"
    SILENCE = "silence"
    PARENT = "parent"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why paging is held back, as the pipeline hands it to the incident manager: its kind
    (the metric's bounded label) and the text people read (stored on the incident)."""

    kind: SuppressionKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident. `severity` None means untriaged (a manual report nobody ranked yet).

    `suppressed` says why paging is held back right now (maintenance, a silence, a parent
    check that is down); None means paging may proceed.
    """

    id: int
    key: str  # dedup key: one open incident per key (default: the check name)
    title: str
    status: IncidentStatus
    severity: Severity | None
    opened_at: datetime
    updated_at: datetime
    check: str | None = None
    source: IncidentSource = IncidentSource.CHECK
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    assignee: str | None = None
    rule: str | None = None
    failure: str | None = None
    message: str = ""
    suppressed: str | None = None
    report_url: str | None = None
    auto_resolve: bool = True
    reopened: int = 0
    drill: bool = False  # a test of the paging path: every message says DRILL
    # What was last healthy and what reverting means (`monitor.engine.lastgood.advice`).
    last_good: Mapping[str, Any] | None = None
    # What the status page says of the incident: written for the public, chosen by a
    # person (never the internal timeline). None: the page shows the title alone.
    public_note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's history."""

    incident_id: int
    at: datetime
    event: str  # opened, failure, severity_raised, suppressed, unsuppressed, recovered, …
    actor: str  # "monitor", or the person who acted
    text: str
    data: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    # The same failure seen again collapses into this entry: how often, and when last.
    count: int = 1
    last_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Paging held back for matching checks between `starts_at` and `ends_at`.

    `matchers` keys: `checks` (globs), `tags`, `kinds`; every given key must match, any
    value within a key may.
    """

    id: int
    matchers: Mapping[str, tuple[str, ...]]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        end = min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at
        return self.starts_at <= now < end


class OutboxStatus(StrEnum):
    """Where an outbox item is. Only `pending` items are ever sent."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # permanently: refused, or undelivered until the give-up time
    SUPERSEDED = "superseded"  # a page nobody needs any more (acknowledged, resolved)


class EscalationMode(StrEnum):
    """What an escalation is waiting for."""

    PAGING = "paging"  # the next step of the policy
    ACKNOWLEDGED = "acknowledged"  # the acknowledgement timeout: then paging starts again


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification to deliver, written before it is sent.

    `key` is the idempotency key: the same page, however often its step runs again after a
    crash, has the same key and is stored once. `payload` is the notification, serialized.
    """

    id: int
    key: str
    notifier: str
    payload: str
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    status: OutboxStatus = OutboxStatus.PENDING
    sent_at: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class EscalationState:
    """Where an incident's escalation is: its policy frozen when it started, the next step
    and when it is due. `mode` ACKNOWLEDGED waits for the acknowledgement timeout.

    `epoch` (whole seconds since 1970 when it started) tells escalations of one incident
    apart: it is part of every page's idempotency key, so a page sent by an earlier
    escalation does not hide one of a later escalation."""

    incident_id: int
    policy: str  # the policy, serialized when the escalation started
    step: int
    pass_no: int
    next_at: datetime
    mode: EscalationMode = EscalationMode.PAGING
    epoch: int = 0
