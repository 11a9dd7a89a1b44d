"""The check seam: what a kind implements, what it is given, and how errors map to kinds.

A kind is one module with a config model (subclass of `CheckConfigBase`) and a `Check`
subclass, plus one line in `checks/__init__.py`.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp

from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import FailureKind, Observation
from monitor.core.resources import is_resource_error
from monitor.metrics.exporter import Metrics

__all__ = ["Check", "CheckContext", "classify_exception"]

C = TypeVar("C", bound=CheckConfigBase)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What every check is handed.

    `shared` holds objects that checks of one kind share across instances (for example
    one rate-limit budget per GitHub token); keys start with the kind's name.
    """

    session: aiohttp.ClientSession
    clock: Clock
    metrics: Metrics | None = None
    shared: dict[str, Any] = field(default_factory=dict)


class Check(ABC, Generic[C]):
    """One configured check. Built once per config; `run()` is called every interval.

    Precompute in `__init__` whatever `run()` needs, so the hot path does no config
    lookups. `run()` returns an `Observation` for every expected failure; an exception
    escaping it is recorded as `unexpected` by the scheduler.
    """

    Config: ClassVar[type[CheckConfigBase]]
    # True when `run()` itself ends within the configured timeout, in every await it
    # makes (one `asyncio.timeout` around all of it): the scheduler then adds no guard.
    bounds_itself: ClassVar[bool] = False

    def __init__(self, config: C, ctx: CheckContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def target(self) -> str:
        """The host this check loads, for per-host concurrency and rate limits."""
        return self.config.kind

    def close(self) -> None:
        """Releases what the check holds (a client, its pool). Called once it stops."""

    @abstractmethod
    async def run(self) -> Observation:
        """Probes once. Must not exceed the configured timeout by much: the scheduler
        cancels it a little after."""


def classify_exception(exc: BaseException) -> tuple[FailureKind, str]:
    """Maps a client exception to a failure kind and a message, most specific first."""
    if is_resource_error(exc) or is_resource_error(getattr(exc, "os_error", None)):
        return FailureKind.MONITOR_RESOURCES, f"the monitor ran out of resources: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureKind.DNS, f"could not resolve {exc.host}: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        reason = getattr(cert, "verify_message", None) or str(cert)
        return FailureKind.TLS, f"TLS certificate of {exc.host} rejected: {reason}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return FailureKind.TLS, f"TLS handshake with {exc.host} failed: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FailureKind.CONNECT, f"could not connect to {exc.host}:{exc.port}: {_os_reason(exc)}"
    if isinstance(exc, asyncio.TimeoutError):
        return FailureKind.TIMEOUT, "timed out"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FailureKind.REDIRECTS, f"too many redirects (stopped after {len(exc.history)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return (
            FailureKind.DISCONNECTED,
            f"connection dropped before the response was complete: {exc}",
        )
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return FailureKind.DISCONNECTED, f"connection error: {exc}"
    if isinstance(exc, ssl.SSLError):
        return FailureKind.TLS, f"TLS error: {getattr(exc, 'reason', None) or exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return FailureKind.PROTOCOL, f"invalid HTTP response: {exc.message or exc}"
    if isinstance(exc, aiohttp.ClientError | ValueError):
        return FailureKind.PROTOCOL, f"request failed: {exc}"
    if isinstance(exc, OSError):
        return FailureKind.CONNECT, f"connection error: {exc.strerror or exc}"
    return FailureKind.UNEXPECTED, f"{type(exc).__name__}: {exc}"


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or str(os_error) or type(os_error).__name__
