"""The one HTTP client every check shares, and per-request phase timing.

Probes use a fresh connection each (`force_close`), like blackbox_exporter, so every
run measures DNS, connect and TLS and sees certificate changes. Phase times come from
aiohttp tracing; a `PhaseTimer` is passed as `trace_request_ctx` and sums the phases
over every redirect hop.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from yarl import URL

from monitor import __version__

__all__ = ["PhaseTimer", "default_user_agent", "make_session", "read_capped"]

# The timer of the request running in this task: the connector's protocol factory is
# called inside the request's task, between the TCP connect and the TLS handshake.
_current: contextvars.ContextVar[PhaseTimer | None] = contextvars.ContextVar(
    "monitor_phase_timer", default=None
)


def default_user_agent() -> str:
    return f"project-asset-monitor/{__version__}"


class PhaseTimer:
    """Seconds spent per phase of one logical request (summed over redirects).

    `stage` names where the request is now, so a timeout can say what it was waiting for.
    """

    __slots__ = (
        "_conn_at",
        "_dns_at",
        "_dns_hop",
        "_headers_at",
        "_protocol",
        "_ready_at",
        "_tcp_at",
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
        self._conn_at = self._dns_at = self._tcp_at = self._ready_at = self._headers_at = 0.0
        self._dns_hop = 0.0
        self.secure = False  # whether the current hop is https
        self.peercert: dict[str, Any] | None = None  # the verified certificate, last hop
        self._protocol: Any = None

    def as_dict(self) -> dict[str, float]:
        phases = {
            "dns": self.dns,
            "connect": self.connect,
            "tls": self.tls,
            "first_byte": self.first_byte,
            "transfer": self.transfer,
        }
        return {k: v for k, v in phases.items() if v > 0.0}

    def request_start(self) -> None:
        now = time.perf_counter()
        self._ready_at = now
        self.stage = "waiting for a connection"
        _current.set(self)

    def dns_start(self) -> None:
        self._dns_at = time.perf_counter()
        self.stage = "resolving the host name"

    def dns_end(self) -> None:
        self._dns_hop = time.perf_counter() - self._dns_at
        self.dns += self._dns_hop

    def connection_start(self) -> None:
        self._conn_at = time.perf_counter()
        self._tcp_at = 0.0
        self._dns_hop = 0.0
        self.stage = "connecting"

    def tcp_connected(self, protocol: Any) -> None:
        self._tcp_at = time.perf_counter()
        self._protocol = protocol
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
        self._ready_at = now
        self.stage = "waiting for the response headers"

    def connection_reused(self) -> None:
        self._ready_at = time.perf_counter()
        self.stage = "waiting for the response headers"

    def headers_received(self) -> None:
        now = time.perf_counter()
        self.first_byte += now - self._ready_at
        self._headers_at = now
        self.stage = "reading the body"

    def body_done(self) -> None:
        self.transfer += time.perf_counter() - self._headers_at
        self.stage = "done"


def _timer(ctx: SimpleNamespace) -> PhaseTimer | None:
    timer = ctx.trace_request_ctx
    return timer if isinstance(timer, PhaseTimer) else None


async def _on_request_start(_s: Any, ctx: SimpleNamespace, params: Any) -> None:
    if timer := _timer(ctx):
        timer.secure = params.url.scheme == "https"
        timer.request_start()


async def _on_dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if timer := _timer(ctx):
        timer.dns_start()


async def _on_dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if timer := _timer(ctx):
        timer.dns_end()


async def _on_conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if timer := _timer(ctx):
        timer.connection_start()


async def _on_conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if timer := _timer(ctx):
        timer.connection_end()


async def _on_conn_reuse(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if timer := _timer(ctx):
        timer.connection_reused()


async def _on_headers(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    # on_request_end fires when the final response's headers arrive.
    if timer := _timer(ctx):
        timer.headers_received()


async def _on_redirect(_s: Any, ctx: SimpleNamespace, params: Any) -> None:
    # A redirect's headers arrived: this hop's first byte; the next hop may change scheme.
    if timer := _timer(ctx):
        timer.headers_received()
        location = params.response.headers.get("Location", "")
        timer.secure = params.url.join(URL(location)).scheme == "https"


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_request_start)
    trace.on_dns_resolvehost_start.append(_on_dns_start)
    trace.on_dns_resolvehost_end.append(_on_dns_end)
    trace.on_connection_create_start.append(_on_conn_start)
    trace.on_connection_create_end.append(_on_conn_end)
    trace.on_connection_reuseconn.append(_on_conn_reuse)
    trace.on_request_end.append(_on_headers)
    trace.on_request_redirect.append(_on_redirect)
    return trace


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
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, force_close=True, use_dns_cache=False
    )
    _mark_tcp_connected(connector)
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[_trace_config()],
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
