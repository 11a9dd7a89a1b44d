"""The notifier seam: a notification, the error a channel raises, and the base class.

A notifier type is one module (a config model and a `Notifier` subclass) plus one line in
`notifiers/__init__.py`. `build_payload` is pure and golden-tested; `send` does the I/O
and raises `NotifierError(retryable=…)`, which the outbox turns into a retry (waiting at
least `retry_after_s`) or a permanent failure. `http_error` is the one place where HTTP
answers are classified, and `redact` keeps URLs, tokens and keys out of every message.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp
from pydantic import AfterValidator, SecretStr
from yarl import URL

from monitor.core.clock import Clock, SystemClock
from monitor.core.configtypes import PositiveDuration, StrictModel
from monitor.core.errors import NotifierError
from monitor.core.model import Severity
from monitor.core.redact import redact_text
from monitor.core.retryafter import parse_retry_after, retry_after

__all__ = [
    "DRILL_NOTE",
    "INCIDENT_LIFECYCLE",
    "HttpUrlSecret",
    "KeyValue",
    "Notification",
    "NotificationEvent",
    "Notifier",
    "NotifierConfigBase",
    "NotifierContext",
    "NotifierError",
    "Recipient",
    "headline",
    "http_error",
    "post",
    "redact",
    "retry_after_s",
]

DRILL_NOTE = "DRILL: a test of the paging path, not a real incident."


class NotificationEvent(StrEnum):
    """Why a notification is sent."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REASSIGN = "reassign"
    HANDOFF = "handoff"
    MONITOR_ALERT = "monitor_alert"


# The events of an incident's life after its first page: a notifier that keeps its own
# record of each incident (a PagerDuty incident, a Slack thread) declares it follows them.
INCIDENT_LIFECYCLE = frozenset(
    {
        NotificationEvent.TRIGGER,
        NotificationEvent.ACKNOWLEDGE,
        NotificationEvent.RESOLVE,
        NotificationEvent.REASSIGN,
    }
)


@dataclass(frozen=True, slots=True, init=False)
class Recipient:
    """A person being paged, with the contact ids channels use, keyed by the contact each
    notifier type reads (`Notifier.contact`: `slack` a member id U…, `discord` a user id,
    `email` an address, `pagerduty` the routing key of the person's own service).

    Contact ids may also be given as keywords (`Recipient("bob", email="b@x")`), as
    notifications stored by earlier versions hold them; None means none.
    """

    name: str
    contacts: Mapping[str, str]

    def __init__(
        self, name: str, contacts: Mapping[str, str] | None = None, **ids: str | None
    ) -> None:
        merged = {**(contacts or {}), **{k: v for k, v in ids.items() if v is not None}}
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "contacts", merged)

    def contact(self, key: str) -> str | None:
        """The id this person has for `key`, or None."""
        return self.contacts.get(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One message to deliver; the outbox stores it serialized until it is sent.

    `incident_id` is None for handoff summaries and alerts about the monitor itself.
    Every message says DRILL clearly when `drill` is set.
    """

    idempotency_key: str  # stable across retries and restarts; sent where channels take one
    event: NotificationEvent
    incident_id: int | None
    dedup_key: str | None  # the incident's dedup key (PagerDuty `dedup_key`)
    title: str
    text: str  # the human message: what failed, what was expected, since when
    severity: Severity | None  # None: untriaged, or not about an incident
    status: str | None  # triggered / acknowledged / resolved
    check: str | None
    recipients: tuple[Recipient, ...] = ()  # empty: a post to a channel
    runbook: str | None = None
    # A plain dict, not a read-only mapping: `dataclasses.asdict` (the outbox payload)
    # cannot copy a MappingProxyType.
    links: Mapping[str, str] = field(default_factory=dict)  # label → URL
    actor: str | None = None  # who acknowledged, resolved or reassigned
    drill: bool = False
    created_at: datetime


class KeyValue(Protocol):
    """Durable notifier state (the store): e.g. the Slack thread of an incident."""

    async def kv_get(self, key: str) -> str | None: ...

    async def kv_set(self, key: str, value: str) -> None: ...


class NotifierConfigBase(StrictModel):
    """Fields every notifier has. A type's config subclasses this and narrows `type`
    to `Literal["its-name"]`, the YAML `type:` value and its registry key."""

    type: str
    # A message this old and still failing: the notifier's outage is reported on the
    # other notifiers (once per outage, with a notice when it delivers again).
    alert_after: PositiveDuration = timedelta(minutes=10)
    # A message still undelivered this long after it was made becomes a dead letter on
    # its incident's timeline.
    give_up_after: PositiveDuration = timedelta(hours=24)


def _http_url(value: SecretStr) -> SecretStr:
    # The message does not repeat the URL: it may carry a token.
    if not value.get_secret_value().startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


# A URL that carries a secret (a webhook token): masked in config dumps and messages.
HttpUrlSecret = Annotated[SecretStr, AfterValidator(_http_url)]


@dataclass(slots=True)
class NotifierContext:
    """What every notifier is handed: the shared HTTP session and durable state.

    `state` is None where nothing persists (`monitor check`); notifiers then work
    without memory (no Slack threads, no PagerDuty routing-key history).
    """

    session: aiohttp.ClientSession
    state: KeyValue | None = None
    # The local time where a channel's answer needs it (a `Retry-After` date from a
    # server that sent no `Date`).
    clock: Clock = field(default_factory=SystemClock, compare=False)


C = TypeVar("C", bound=NotifierConfigBase)


class Notifier(ABC, Generic[C]):
    """One configured channel.

    Args:
        name: the notifier's key under `notifiers:`; it names the notifier in messages.
        config: its validated config (`Config`).
        ctx: the shared session and state. A bare session is accepted too (the daemon
            passes one and sets `state` afterwards).
    """

    Config: ClassVar[type[NotifierConfigBase]]
    # The incident events this type is sent for every incident, paging for it or not
    # (`INCIDENT_LIFECYCLE` for a type that tracks incidents). Every notifier is sent the
    # events of the incidents it pages for, whatever it declares here.
    follows: ClassVar[frozenset[NotificationEvent]] = frozenset()
    # The key of a person's contacts this type reads (`Recipient.contact`), or None; a
    # person's id under it is checked by `validate_contact` when the config is loaded.
    contact: ClassVar[str | None] = None

    @classmethod
    def validate_contact(cls, value: str) -> str:
        """A person's id for `contact`, as it is kept; raises ValueError if unusable."""
        return value

    def __init__(self, name: str, config: C, ctx: NotifierContext | aiohttp.ClientSession) -> None:
        self.name = name
        self.config = config
        self.ctx = ctx if isinstance(ctx, NotifierContext) else NotifierContext(ctx)
        # Every SecretStr of the config is cut out of error text a server echoes back.
        self.secrets = tuple(
            v.get_secret_value()
            for v in (getattr(config, f) for f in type(config).model_fields)
            if isinstance(v, SecretStr)
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.ctx.session

    @property
    def state(self) -> KeyValue | None:
        return self.ctx.state

    @state.setter
    def state(self, value: KeyValue | None) -> None:
        self.ctx.state = value

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @abstractmethod
    def build_payload(self, n: Notification) -> dict[str, Any]:
        """Returns what `send` delivers for `n` (the request body, or for email the
        message fields). Pure: no I/O, no clock, no state; golden-tested."""

    @abstractmethod
    async def send(self, n: Notification) -> None:
        """Delivers `n`.

        Raises:
            NotifierError: the delivery failed; `retryable` says whether to try again.
        """


_VERB = {
    NotificationEvent.TRIGGER: "",
    NotificationEvent.ACKNOWLEDGE: "Acknowledged: ",
    NotificationEvent.RESOLVE: "Resolved: ",
    NotificationEvent.REASSIGN: "Reassigned: ",
    NotificationEvent.HANDOFF: "",
    NotificationEvent.MONITOR_ALERT: "Monitor alert: ",
}


_DRILL_LABEL = re.compile(r"^DRILL\b[:\s-]*")


def headline(n: Notification) -> str:
    """The one-line title every channel shows: `DRILL [P0] Acknowledged: <title>`."""
    title = _DRILL_LABEL.sub("", n.title) if n.drill else n.title  # said once, up front
    drill = "DRILL " if n.drill else ""
    severity = f"[{n.severity}] " if n.severity else ""
    return f"{drill}{severity}{_VERB[n.event]}{title}"


# --- HTTP ---------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (and, for a URL, its long path segments and query values,
    where webhook tokens live) replaced by `<redacted>`."""
    found: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:  # too short to be a credential; replacing it would garble text
            continue
        found.add(secret)
        if secret.startswith(("http://", "https://")):
            try:
                url = URL(secret)
            except ValueError:
                continue
            found.update(p for p in url.parts if len(p) >= 16)
            found.update(v for v in url.query.values() if len(v) >= 8)
            found.add(str(url.with_query(None)))
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return redact_text(text)  # and what monitor.core.redact masks on every surface


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds to wait: a number of seconds, or an HTTP date compared
    with `now`. None when absent or unreadable (the one parser: `monitor.core.retryafter`)."""
    return parse_retry_after(value, now)


def _body_retry_after(text: str) -> float | None:
    """Discord puts `retry_after` (seconds, a float) in the JSON body of a 429."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    value = doc.get("retry_after") if isinstance(doc, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def http_error(
    what: str, status: int, headers: Mapping[str, str], text: str, secrets: Iterable[str] = (),
    *, clock: Clock | None = None,
) -> NotifierError | None:  # fmt: skip
    """Classifies an HTTP answer. None for 2xx. 429 is retryable after `Retry-After`
    (seconds or an HTTP date) or a JSON `retry_after`; 5xx is retryable; any other
    status is permanent. The message carries the answer's error text, redacted."""
    if 200 <= status < 300:
        return None
    short = redact(" ".join(text.split()), secrets)[:300]
    message = f"{what} answered {status}" + (f": {short}" if short else "")
    if status == 429:
        # any header case; an HTTP-date against the server's Date (else `clock`'s time)
        wait = retry_after(headers, clock=clock)
        if wait is None:
            wait = _body_retry_after(text)
        return NotifierError(message, retryable=True, retry_after_s=wait)
    return NotifierError(message, retryable=status >= 500)


async def post(
    session: aiohttp.ClientSession,
    what: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    timeout_s: float = 15.0,
    clock: Clock | None = None,
) -> str:
    """POSTs `json_body` (or the raw `data`) and returns the answer's text (its first
    64 KiB) when the status is 2xx.

    Raises:
        NotifierError: classified by `http_error`; network errors and timeouts are
            retryable. `what` names the channel in messages, never the URL: the URL and
            `secrets` are cut out of any text that is kept.
    """
    hidden = (url, *secrets)
    try:
        async with session.post(
            url,
            json=json_body if data is None else None,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            text = (await resp.content.read(65536)).decode("utf-8", "replace")
            error = http_error(what, resp.status, resp.headers, text, hidden, clock=clock)
    except TimeoutError as exc:
        raise NotifierError(f"{what}: no answer within {timeout_s:g}s", retryable=True) from exc
    except (aiohttp.ClientError, OSError) as exc:
        detail = redact(str(exc), hidden)
        raise NotifierError(
            f"{what} unreachable: {type(exc).__name__}" + (f": {detail}" if detail else ""),
            retryable=True,
        ) from exc
    if error is not None:
        raise error
    return text
