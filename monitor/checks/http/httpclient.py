"""The HTTP session of the registry, marketplace and GitHub checks, and phase timing.

`kind: http` probes use their own client (`monitor.checks.http.probe`); the API checks share one
aiohttp session. Both use a fresh connection per request (`force_close`), like
blackbox_exporter, so every run sees DNS, connect and TLS as they are now.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import aiohttp

from monitor import __version__

__all__ = ["PhaseTimer", "default_user_agent", "make_session", "read_capped"]


def default_user_agent() -> str:
    return f"project-asset-monitor/{__version__}"


class PhaseTimer:
    """Seconds spent per phase of one logical request, summed over redirect hops.

    It reads `time.perf_counter()`, not the injected clock, on purpose: it measures how
    long the process spent in each phase of real I/O (sub-millisecond splits reported as
    facts, never judged by a rule), which only a high-resolution process counter can.
    Nothing here reads the wall clock.

    Used as `with timer:` around the request, which starts the clock. `first_byte` is
    all the time up to the final response's headers that was not spent resolving,
    connecting or in TLS: the waits for every hop's response. `stage` names where the
    request is now, so a timeout can say what it was waiting for.
    """

    __slots__ = (
        "_conn_at",
        "_dns_at",
        "_dns_hop",
        "_headers_at",
        "_protocol",
        "_start",
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
        self._start = self._conn_at = self._dns_at = self._tcp_at = self._headers_at = 0.0
        self._dns_hop = 0.0
        self.secure = False  # whether the current hop is https
        self.peercert: dict[str, Any] | None = None  # the verified certificate, last hop
        self._protocol: Any = None

    def __enter__(self) -> PhaseTimer:
        self._start = time.perf_counter()
        self.stage = "waiting for a connection"
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        return None

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
            # Read the certificate now, while the connection is surely open.
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


def make_session(user_agent: str = "") -> aiohttp.ClientSession:
    """The shared session: no pooling (fresh connection per probe), no client limits
    (the scheduler bounds concurrency), no DNS cache (a DNS outage must show)."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, force_close=True, use_dns_cache=False
    )
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
