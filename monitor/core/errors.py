"""Errors the monitor raises on purpose.

Expected probe failures are never exceptions: they are `CheckResult` values. What is
left is raised as one of::

    MonitorError                 retryable by default: the same call later may succeed
    ├── ConfigError              the config file cannot be used; carries every issue found
    ├── StoreError               storage failed (disk, corrupt file, a broken invariant)
    ├── ProbeError               a request produced no response to judge; carries its kind
    ├── NotifierError            a delivery failed; `retryable` says whether to try again
    ├── IncidentError            a requested change to an incident is not possible
    │   ├── IncidentNotFound     no such incident
    │   ├── IncidentConflict     the incident's state forbids it (e.g. already resolved)
    │   └── IncidentInvalid      the request itself is wrong
    ├── PostmortemIssueError     GitHub refused or could not be reached
    └── ApiError                 the daemon answered with an error, or could not be reached

Retryability is a property of the type (`retryable`): the outbox reads it from every
`MonitorError` instead of guessing. A `NotifierError` states it per failure (a 5xx may
pass, a 4xx will not). HTTP status codes are not part of these errors: the web layer maps
each type to its status (`monitor.web.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.model import FailureKind

__all__ = [
    "ApiError",
    "ConfigError",
    "ConfigIssue",
    "IncidentConflict",
    "IncidentError",
    "IncidentInvalid",
    "IncidentNotFound",
    "MonitorError",
    "NotifierError",
    "PostmortemIssueError",
    "ProbeError",
    "StoreError",
]


class MonitorError(Exception):
    """Base of every error the monitor raises deliberately."""

    # May the same operation succeed if tried again later? Subclasses that can never
    # succeed again (a bad config, an impossible request) say False.
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(MonitorError):
    """Raised when a config file is invalid; `issues` lists every problem, not the first."""

    retryable = False

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class StoreError(MonitorError):
    """Raised when storage fails: the file cannot be opened or written (disk full, corrupt
    file, newer schema), a second open incident for one key, a store used after `close()`.
    A caller's bug (a naive datetime, timeline data that is not JSON) raises as itself."""


class ProbeError(MonitorError):
    """A request that produced no response to judge: what failed, in words."""

    def __init__(self, failure: FailureKind, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


class NotifierError(MonitorError):
    """A delivery failed. `retryable` False means retrying cannot help (a 4xx, a refusal).

    `retry_after_s` is the least wait the channel asked for (429 `Retry-After`). The
    message names the notifier and the channel's own error text, never a URL or secret.
    """

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class IncidentError(MonitorError):
    """A requested change to an incident is not possible. Raise a subclass: the type says
    why, and the web layer turns it into an HTTP status."""

    retryable = False


class IncidentNotFound(IncidentError):
    """No incident has the given id."""


class IncidentConflict(IncidentError):
    """The incident's state forbids the change (it is already resolved, say)."""


class IncidentInvalid(IncidentError):
    """The request itself cannot be carried out as given."""


class PostmortemIssueError(MonitorError):
    """GitHub refused (bad token, no such repository, no permission) or was unreachable."""


class ApiError(MonitorError):
    """The daemon answered with an error, or could not be reached."""
