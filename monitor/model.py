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

__all__ = ["EMPTY", "CheckResult", "FailureKind", "Observation", "Outcome"]

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
