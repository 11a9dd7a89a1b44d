"""The upstream error map: what a failed request to an upstream means, as a failure kind.

Three HTTP stacks talk to upstreams: the probe of `kind: http` (`checks.http.probe`), the
shared aiohttp session of the JSON-API checks (`checks.upstream`), and PyGithub (with
requests underneath) in `checks.github_actions`. They all ask here what an exception or
an HTTP status means, so the same failure has the same kind whichever stack saw it; each
caller only words the message for its upstream.

Exceptions:
    - out of the monitor's own resources (EMFILE, ENOBUFS, …) → `MONITOR_RESOURCES`
    - name resolution → `DNS`; a rejected certificate or failed handshake → `TLS`
    - no connection → `CONNECT`; dropped mid-answer → `DISCONNECTED`; timed out → `TIMEOUT`
    - too many redirects → `REDIRECTS`; a malformed answer → `PROTOCOL`
Statuses (`status_failure`):
    - 429, or a refusal that says it is a rate limit → `RATE_LIMITED`
    - 401, 403 → `AUTH`; 5xx → `UNAVAILABLE`; anything else not 2xx → `PROTOCOL`
    A 404 means something only to the caller (a package that does not exist, a workflow
    not in the repository): callers that expect one handle it before asking here.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import requests

from monitor.core.model import FailureKind
from monitor.core.resources import is_resource_error

__all__ = [
    "certificate_rejected",
    "classify_exception",
    "handshake_failed",
    "innermost_reason",
    "not_json",
    "os_failure",
    "os_reason",
    "requests_failure",
    "status_failure",
]


def status_failure(status: int, *, rate_limited: bool = False) -> FailureKind:
    """The kind of a non-2xx answer. `rate_limited`: the upstream said in its own way
    (a `Retry-After`, an exhausted budget) that a 403 is a rate limit."""
    if status == 429 or rate_limited:
        return FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.AUTH
    if status >= 500:
        return FailureKind.UNAVAILABLE
    return FailureKind.PROTOCOL


def os_failure(exc: OSError) -> FailureKind:
    """A socket that could not connect: the monitor's own limits, or the far side."""
    return FailureKind.MONITOR_RESOURCES if is_resource_error(exc) else FailureKind.CONNECT


def os_reason(exc: OSError) -> str:
    """The operating system's words for a socket error."""
    return exc.strerror or str(exc) or type(exc).__name__


def innermost_reason(exc: BaseException) -> str:
    """The innermost cause: requests wraps urllib3, which wraps the socket error."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            first = seen.args[0] if seen.args else None
            inner = first if isinstance(first, BaseException) else seen.__cause__
        seen = inner
    return type(exc).__name__


def certificate_rejected(host: str, reason: str) -> tuple[FailureKind, str]:
    return FailureKind.TLS, f"TLS certificate of {host} rejected: {reason}"


def handshake_failed(host: str, reason: str) -> tuple[FailureKind, str]:
    return FailureKind.TLS, f"TLS handshake with {host} failed: {reason}"


def not_json(content_type: str, exc: ValueError) -> tuple[FailureKind, str]:
    """A body that should have been JSON: what it was instead."""
    if "json" not in content_type:
        return FailureKind.SCHEMA, f"{content_type} instead of JSON"
    return FailureKind.SCHEMA, f"malformed JSON ({exc})"


def requests_failure(exc: requests.RequestException) -> tuple[FailureKind, str]:
    """A request made through requests (PyGithub) that got no answer: the upstream is
    unavailable, for the innermost reason."""
    return FailureKind.UNAVAILABLE, innermost_reason(exc)


def classify_exception(exc: BaseException) -> tuple[FailureKind, str]:
    """Maps an aiohttp client exception (or a socket error) to a failure kind and a
    message, most specific first."""
    if is_resource_error(exc) or is_resource_error(getattr(exc, "os_error", None)):
        return FailureKind.MONITOR_RESOURCES, f"the monitor ran out of resources: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureKind.DNS, f"could not resolve {exc.host}: {os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        return certificate_rejected(exc.host, getattr(cert, "verify_message", None) or str(cert))
    if isinstance(exc, aiohttp.ClientSSLError):
        return handshake_failed(exc.host, os_reason(exc.os_error))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            FailureKind.CONNECT,
            f"could not connect to {exc.host}:{exc.port}: {os_reason(exc.os_error)}",
        )
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
