"""The notifier seam: a notification, the error a channel raises, and the base class.

A notifier is one module with a config model and a `Notifier` subclass, plus one line in
`notifiers/__init__.py`. `build_payload` is pure (golden-tested); `send` does the I/O and
raises `NotifierError(retryable=…)`, which the outbox turns into a retry or a permanent
failure.
"""

from __future__ import annotations

import email.utils
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp
from yarl import URL

from monitor.configtypes import StrictModel
from monitor.model import Severity

__all__ = [
    "KeyValue",
    "Notification",
    "NotificationEvent",
    "Notifier",
    "NotifierConfigBase",
    "NotifierError",
    "Recipient",
    "post_json",
]


class NotificationEvent(StrEnum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REASSIGN = "reassign"
    HANDOFF = "handoff"
    MONITOR_ALERT = "monitor_alert"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person being paged, with the contact ids channels use."""

    name: str
    slack: str | None = None
    discord: str | None = None
    email: str | None = None
    pagerduty: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    idempotency_key: str  # stable across retries and restarts
    event: NotificationEvent
    incident_id: int | None
    dedup_key: str | None  # the incident's dedup key (PagerDuty dedup_key)
    title: str
    text: str
    severity: Severity | None
    status: str | None
    check: str | None
    created_at: datetime
    recipients: tuple[Recipient, ...] = ()  # empty: a post to a channel
    runbook: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    actor: str | None = None
    drill: bool = False


class NotifierError(Exception):
    """A delivery failed. `retryable` False means retrying cannot help (a 4xx)."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class KeyValue(Protocol):
    """Durable notifier state (the store): e.g. the Slack thread of an incident."""

    async def kv_get(self, key: str) -> str | None: ...

    async def kv_set(self, key: str, value: str) -> None: ...


class NotifierConfigBase(StrictModel):
    type: str


C = TypeVar("C", bound=NotifierConfigBase)


class Notifier(ABC, Generic[C]):
    Config: ClassVar[type[NotifierConfigBase]]

    def __init__(self, name: str, config: C, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.session = session
        self.state: KeyValue | None = None  # set by the daemon; None in `monitor check`

    @abstractmethod
    def build_payload(self, n: Notification) -> dict[str, Any]:
        """The body to send. Pure."""

    @abstractmethod
    async def send(self, n: Notification) -> None:
        """Delivers `n`; raises NotifierError."""


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return max(0.0, (parsed - datetime.now(UTC)).total_seconds())


def _body_retry_after(text: str) -> float | None:
    """Discord (and others) put `retry_after` (seconds, a float) in a JSON body."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    value = doc.get("retry_after") if isinstance(doc, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


async def post_json(
    session: aiohttp.ClientSession, what: str, url: str, body: Any, *,
    headers: Mapping[str, str] | None = None, data: bytes | None = None, timeout_s: float = 15.0,
    redact: Iterable[str] = (),
) -> str:  # fmt: skip
    """POSTs and classifies the answer: 2xx returns the body text; 429 (with `Retry-After`,
    or `retry_after` in a JSON body), 5xx, network errors and timeouts are retryable; other
    4xx are permanent, with the answer's short error text. `what` names the channel in
    messages, never the URL (it may carry a secret); the URL and `redact` (tokens, routing
    keys) are also cut out of any answer text a server echoes back."""
    try:
        async with session.post(
            url, json=None if data is not None else body, data=data, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:  # fmt: skip
            text = (await resp.content.read(4096)).decode("utf-8", "replace")
            if 200 <= resp.status < 300:
                return text
            short = " ".join(text.split())
            # Webhook tokens are path segments (Discord, Slack): long ones are cut out too.
            tokens = [part for part in URL(url).parts if len(part) >= 16]
            for secret in sorted({url, *tokens, *redact}, key=len, reverse=True):
                if secret:
                    short = short.replace(secret, "<redacted>")
            short = short[:200]
            got = f"{what} answered {resp.status}" + (f": {short}" if short else "")
            if resp.status == 429:
                wait = _retry_after(resp.headers.get("Retry-After"))
                raise NotifierError(
                    got,
                    retryable=True,
                    retry_after_s=wait if wait is not None else _body_retry_after(text),
                )
            raise NotifierError(got, retryable=resp.status >= 500)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise NotifierError(f"{what} unreachable: {type(exc).__name__}", retryable=True) from exc
