"""The one HTTP client every check shares, and per-request phase timing.

Probes use a fresh connection each (`force_close`), like blackbox_exporter, so every
run measures DNS, connect and TLS and sees certificate changes.

Phase times come from three hooks on the session's own parts, not from aiohttp's
request tracing (whose per-request signal objects cost about as much as the rest of
the monitor's work on a probe): the connector's `connect()` (one call per hop), a
resolver that wraps the default one, and the connector's protocol factory (called
between the TCP connect and the TLS handshake). The `PhaseTimer` of the request in
progress is found through a context variable that the check sets around its request.
"""

from __future__ import annotations

import contextvars
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from monitor import __version__

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

__all__ = ["PhaseTimer", "default_user_agent", "make_session", "read_capped"]

# The timer of the request running in this task. Connection set-up and name resolution
# run inside the request's task, so the hooks below find it here.
_current: contextvars.ContextVar[PhaseTimer | None] = contextvars.ContextVar(
    "monitor_phase_timer", default=None
)


def default_user_agent() -> str:
    return f"project-asset-monitor/{__version__}"


class PhaseTimer:
    """Seconds spent per phase of one logical request, summed over redirect hops.

    Used as `with timer:` around the request, so the session's hooks can find it.
    `first_byte` is all the time up to the final response's headers that was not spent
    resolving, connecting or in TLS: the waits for every hop's response. `stage` names
    where the request is now, so a timeout can say what it was waiting for.
    """

    __slots__ = (
        "_conn_at",
        "_dns_at",
        "_dns_hop",
        "_headers_at",
        "_protocol",
        "_start",
        "_tcp_at",
        "_token",
        "connect",
        "dns",
        "first_byte",
        "peercert",
        "secure",
        "stage",
        "tls",
        "transfer",
    )  # fmt: skip

    def __init__(self) -> None:
        self.dns = self.connect = self.tls = self.first_byte = self.transfer = 0.0
        self.stage = "starting"
        self._start = self._conn_at = self._dns_at = self._tcp_at = self._headers_at = 0.0
        self._dns_hop = 0.0
        self.secure = False  # whether the current hop is https
        self.peercert: dict[str, Any] | None = None  # the verified certificate, last hop
        self._protocol: Any = None
        self._token: contextvars.Token[PhaseTimer | None] | None = None

    def __enter__(self) -> PhaseTimer:
        self._start = time.perf_counter()
        self.stage = "waiting for a connection"
        self._token = _current.set(self)
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def as_dict(self) -> dict[str, float]:
        phases = {
            "dns": self.dns,
            "connect": self.connect,
            "tls": self.tls,
            "first_byte": self.first_byte,
            "transfer": self.transfer,
        }
        return {k: v for k, v in phases.items() if v > 0.0}

    def dns_start(self) -> None:
        self._dns_at = time.perf_counter()
        self.stage = "resolving the host name"

    def dns_end(self) -> None:
        self._dns_hop = time.perf_counter() - self._dns_at
        self.dns += self._dns_hop

    def connection_start(self, secure: bool) -> None:
        self._conn_at = time.perf_counter()
        self._tcp_at = 0.0
        self._dns_hop = 0.0
        self.secure = secure
        self.stage = "connecting"

    def tcp_connected(self, protocol: Any) -> None:
        self._tcp_at = time.perf_counter()
        self._protocol = protocol
        if self.secure:
            self.stage = "in the TLS handshake"

    def connection_end(self) -> None:
        now = time.perf_counter()
        if self.secure and self._tcp_at:
            self.connect += self._tcp_at - self._conn_at - self._dns_hop
            self.tls += now - self._tcp_at
            # Read the certificate now: a small response's connection may be released
            # (and, with force_close, closed) before the caller sees the response.
            transport = getattr(self._protocol, "transport", None)
            self.peercert = transport.get_extra_info("peercert") if transport else None
        else:
            self.connect += now - self._conn_at - self._dns_hop
        self.stage = "waiting for the response headers"

    def headers_received(self) -> None:
        """The final response's headers are in."""
        now = time.perf_counter()
        self.first_byte = max(0.0, now - self._start - self.dns - self.connect - self.tls)
        self._headers_at = now
        self.stage = "reading the body"

    def body_done(self) -> None:
        self.transfer += time.perf_counter() - self._headers_at
        self.stage = "done"


class _TimedConnector(aiohttp.TCPConnector):
    """Times each hop's connection set-up for the request's `PhaseTimer`."""

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109  aiohttp's signature
    ) -> Connection:
        timer = _current.get()
        if timer is None:
            return await super().connect(req, traces, timeout)
        timer.connection_start(req.is_ssl())
        conn = await super().connect(req, traces, timeout)
        timer.connection_end()
        return conn


class _TimedResolver(AbstractResolver):
    """The default resolver, timed for the request's `PhaseTimer`."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        timer = _current.get()
        if timer is None:
            return await self._inner.resolve(host, port, family)
        timer.dns_start()
        try:
            return await self._inner.resolve(host, port, family)
        finally:
            timer.dns_end()

    async def close(self) -> None:
        await self._inner.close()


def _mark_tcp_connected(connector: aiohttp.TCPConnector) -> None:
    """Wraps the connector's protocol factory to time the end of the TCP connect.

    asyncio builds the protocol after the socket connects and before the TLS handshake
    starts, so this splits `connect` from `tls`. If a future aiohttp drops the private
    `_factory`, the TLS time is simply counted as connect time.
    """
    factory: Callable[[], Any] | None = getattr(connector, "_factory", None)
    if factory is None:
        return

    def timed_factory() -> Any:
        protocol = factory()
        if (timer := _current.get()) is not None:
            timer.tcp_connected(protocol)
        return protocol

    connector._factory = timed_factory  # type: ignore[assignment]  # see docstring


def make_session(user_agent: str = "") -> aiohttp.ClientSession:
    """The shared session: no pooling (fresh connection per probe), no client limits
    (the scheduler bounds concurrency), no DNS cache (a DNS outage must show)."""
    connector = _TimedConnector(
        limit=0,
        limit_per_host=0,
        force_close=True,
        use_dns_cache=False,
        resolver=_TimedResolver(),
    )
    _mark_tcp_connected(connector)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": user_agent or default_user_agent()},
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
    )


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Reads the body up to `cap` bytes; says whether more was left unread.

    One `read(n)` returns what has arrived so far, not n bytes: loop until EOF or cap.
    """
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = await stream.read(cap - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), not stream.at_eof() or bool(await stream.read(1))
