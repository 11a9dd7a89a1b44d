"""The HTTP/1.1 client of `kind: http` checks: one request per fresh connection.

A probe sends one request and reads one response per connection, then closes it, like
blackbox_exporter, so every run measures DNS, connect and TLS and sees certificate
changes. That is all this client does, written on asyncio's socket and protocol API:
a general client's pooling, streams and hooks cost about as much CPU per probe as the
rest of the daemon's work on a result.

What it does: redirects (301, 302, 303, 307, 308; a 303, or a 301/302 after a POST,
becomes a GET without body; credentials are dropped when the origin changes), TLS with
the check's trust settings, Content-Length, chunked and read-until-close bodies, gzip
and deflate bodies, a cap on the body bytes kept, and phase timing on a `PhaseTimer`.
Every failure is a `ProbeError` with its failure kind and a message naming the host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, cast

from yarl import URL

from monitor.httpclient import PhaseTimer
from monitor.model import FailureKind
from monitor.resources import is_resource_error

__all__ = ["ProbeError", "ProbeResponse", "Prober", "unverified_context"]

_MAX_HEAD = 64 * 1024  # bytes of status line and headers, like a server's limit
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
# One header line: a name without spaces, a colon, the rest of the line. No part can
# match in two ways, so a hostile line costs linear time.
_HEADER = re.compile(r"^([^:\s]+):([^\r\n]*)\r?$", re.MULTILINE)
CONNECT_STAGGER_S = 0.25  # Happy Eyeballs: the next address after this long
_MAX_CHUNK_LINE = 1024  # a chunk size with extensions; real ones are a few bytes
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# not sent to another origin: credentials, and a Host header meant for the first one
_ORIGIN_BOUND = ("authorization", "cookie", "proxy-authorization", "host")


class ProbeError(Exception):
    """A request that produced no response to judge: what failed, in words."""

    def __init__(self, failure: FailureKind, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


@dataclass(frozen=True, slots=True)
class ProbeResponse:
    """What the judge needs from the final response, captured before the connection
    closes."""

    status: int
    reason: str
    url: str
    location: str | None
    chain: list[tuple[int, str]]  # (status, URL) of every redirect followed
    body: bytes
    truncated: bool
    charset: str | None
    not_after: datetime | None = None
    header: str | None = None  # the value of the header the caller asked for


@cache
def unverified_context() -> ssl.SSLContext:
    """TLS without certificate or host name checks (`tls_verify: false`)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_headers(headers: dict[str, str]) -> None:
    """Raises ValueError for a header that cannot go on the wire as written."""
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} has a line break in its value")


def _request_bytes(method: str, url: URL, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request head (and body) for one hop; `headers` are the caller's, by name."""
    given = {name.lower() for name in headers}
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {url.host_port_subcomponent}")
    lines += (
        f"{name}: {value}"
        for name, value in (
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Connection", "close"),
        )
        if name.lower() not in given
    )
    lines += (f"{name}: {value}" for name, value in headers.items())
    if body is not None or method in ("POST", "PUT", "PATCH"):
        if "content-length" not in given:
            lines.append(f"Content-Length: {len(body or b'')}")
        if body is not None and "content-type" not in given:
            lines.append("Content-Type: application/octet-stream")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + body if body else head


def _charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type, if it names a known codec."""
    if not content_type or "charset" not in content_type.lower():
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"').strip()
            try:  # a text codec that decodes anything with errors="replace"
                b"\xff<\xe9>".decode(name, errors="replace")
            except (LookupError, ValueError):  # unknown, bytes-to-bytes, or idna-like
                return None
            return name
    return None


def _text(value: str) -> str:
    """A header value read as Latin-1 on the wire, decoded as the UTF-8 it usually is."""
    return value.encode("latin-1").decode("utf-8", errors="replace")


class _Head:
    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names; the first of repeated headers


def _parse_head(raw: bytes) -> _Head:
    text = raw.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    if not parts[0].startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP/1 status line: {status_line[:80]!r}")
    pairs = _HEADER.findall(rest) if rest else []
    if len(pairs) != (rest.count("\r\n") + 1 if rest else 0):
        raise ValueError("malformed header line")
    headers = {name.lower(): value.strip(" \t") for name, value in reversed(pairs)}
    if len(headers) != len(pairs):  # repeated names: lengths must agree
        lengths = {v.strip(" \t") for k, v in pairs if k.lower() == "content-length"}
        if len(lengths) > 1:
            raise ValueError(f"conflicting Content-Length headers {sorted(lengths)}")
    return _Head(int(code), parts[2].strip() if len(parts) > 2 else "", headers)


class _Exchange(asyncio.Protocol):
    """One request written and one response read on one connection.

    `done` resolves with the head, the body (decoded, at most `cap` bytes) and whether
    more followed, or with a ProbeError.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        request: bytes,
        head_only: bool,
        follow: bool,
        cap: int,
        timer: PhaseTimer,
        host: str,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[tuple[_Head, bytes, bool]] = loop.create_future()
        self._request = request
        self._head_only = head_only
        self._follow = follow  # a redirect's body is not read
        self._cap = cap
        self._timer = timer
        self._host = host
        self._buffer = b""
        self._head: _Head | None = None
        self._left = -1  # body bytes still expected: -1 until close, -2 chunked
        self._chunk = 0  # bytes left of the current chunk, -1 before its size line
        self._decoder: zlib._Decompress | None = None
        self._deflate = False  # deflate, its framing not known yet: with zlib header or raw
        self._start = b""  # a deflate body's first byte, until the second one comes
        self._parts: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            if self._head is None:
                rest = self._read_head(data)
                if rest is None or self.done.done():
                    return
                data = rest
            if data:
                self._read_body(data)
        except ValueError as exc:
            self._fail(FailureKind.PROTOCOL, f"invalid HTTP response from {self._host}: {exc}")
        except zlib.error as exc:
            self._fail(FailureKind.PROTOCOL, f"could not decode the response body: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self._fail(FailureKind.DISCONNECTED, f"connection error: {exc}")
        elif self._head is None:
            got = "no response" if not self._buffer else "an incomplete response head"
            self._fail(
                FailureKind.DISCONNECTED,
                f"connection dropped before the response was complete: {got} from {self._host}",
            )
        elif self._left == -1:
            self._finish(False)
        else:
            missing = "the rest of a chunked body" if self._left == -2 else f"{self._left} bytes"
            self._fail(
                FailureKind.DISCONNECTED,
                f"connection dropped before the response was complete: {missing} missing",
            )

    def _fail(self, failure: FailureKind, message: str) -> None:
        if not self.done.done():
            self.done.set_exception(ProbeError(failure, message))

    def _read_head(self, data: bytes) -> bytes | None:
        """Takes the status line and headers (skipping 1xx); returns the body's start,
        None while the head is incomplete."""
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end > _MAX_HEAD:
                raise ValueError(f"response headers longer than {_MAX_HEAD} bytes")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise ValueError(f"no end of the headers in the first {_MAX_HEAD} bytes")
                self._buffer = buffer
                return None
            head = _parse_head(buffer[:end])
            buffer = buffer[end + 4 :]
            if 100 <= head.status < 200 and head.status != 101:
                continue  # an interim response: the real one follows
            break
        self._buffer = b""
        self._head = head
        self._timer.headers_received()
        headers = head.headers
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._deflate = True  # the decoder is chosen by the first two bytes
        if (
            self._head_only
            or head.status in _NO_BODY
            or (
                self._follow
                and head.status in _REDIRECTS
                and ("location" in headers or "uri" in headers)
            )
        ):
            self._finish(False)
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._left, self._chunk = -2, -1
        elif (length := headers.get("content-length")) is not None:
            if not length.isdigit():
                raise ValueError(f"Content-Length {length!r} is not a number")
            self._left = int(length)
            if self._left == 0:
                self._finish(False)
        return buffer

    def _read_body(self, data: bytes) -> None:
        if self._left >= 0:
            data = data[: self._left]
            self._left -= len(data)
            if self._keep(data) and self._left == 0:
                self._finish(False)
        elif self._left == -1:
            self._keep(data)
        else:
            self._read_chunks(self._buffer + data if self._buffer else data)

    def _read_chunks(self, data: bytes) -> None:
        pos = 0
        while not self.done.done():
            if self._chunk == -1:
                end = data.find(b"\r\n", pos)
                if end < 0:
                    if len(data) - pos > _MAX_CHUNK_LINE:
                        raise ValueError(f"chunk size line longer than {_MAX_CHUNK_LINE} bytes")
                    break
                size = data[pos:end].split(b";", 1)[0].strip()
                try:
                    self._chunk = int(size, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size line {data[pos:end][:40]!r}") from None
                pos = end + 2
                if self._chunk == 0:
                    self._finish(False)  # trailers, if any, are not needed
                    return
            elif self._chunk > 0:
                piece = data[pos : pos + self._chunk]
                if not piece:
                    break
                pos += len(piece)
                self._chunk -= len(piece)
                if not self._keep(piece):
                    return
            else:  # the CRLF after a chunk's data
                if len(data) - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ValueError("chunk data longer than its size")
                pos += 2
                self._chunk = -1
        self._buffer = data[pos:]

    def _keep(self, data: bytes) -> bool:
        """Adds body bytes; False once more than `cap` decoded bytes have arrived."""
        room = self._cap + 1 - self._size
        if self._deflate:
            data = self._start + data
            if len(data) < 2:
                self._start = data
                return True
            self._start = b""
            self._deflate = False
            # RFC 1950's header: compression method 8 and a check over the two bytes
            wrapped = data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._decoder is not None:
            if self._decoder.eof:
                return True  # bytes after the end of the compressed stream are dropped
            data = self._decoder.decompress(data, room)
        elif len(data) > room:
            data = data[:room]
        self._parts.append(data)
        self._size += len(data)
        if self._size > self._cap:
            self._finish(True)
            return False
        return True

    def _finish(self, truncated: bool) -> None:
        head = self._head
        if head is None:
            return
        if not truncated and self._decoder is not None and self._size <= self._cap:
            rest = self._decoder.flush()
            if rest:
                self._parts.append(rest)
                self._size += len(rest)
                truncated = self._size > self._cap
        body = b"".join(self._parts)
        if truncated:
            body = body[: self._cap]
        self._timer.body_done()
        self.done.set_result((head, body, truncated))


class Prober:
    """Requests one URL per `fetch()`, following redirects as configured."""

    def __init__(
        self,
        url: URL,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        user_agent: str,
        tls: ssl.SSLContext,
        follow_redirects: bool = True,
        max_redirects: int = 10,
        max_body: int = 1024 * 1024,
        record_header: str | None = None,
    ) -> None:
        given = dict(headers or {})
        check_headers(given)
        if not any(name.lower() == "user-agent" for name in given):
            given = {"User-Agent": user_agent, **given}
        self._url = url
        self._method = method
        self._headers = given
        self._body = body
        self._tls = tls
        self._follow = follow_redirects
        self._max_redirects = max_redirects
        self._cap = max_body
        self._record_header = record_header.lower() if record_header else None
        self._first = _request_bytes(method, url, given, body)  # the same every run

    async def fetch(self, timer: PhaseTimer) -> ProbeResponse:
        url, method, headers, body = self._url, self._method, self._headers, self._body
        request = self._first
        chain: list[tuple[int, str]] = []
        while True:
            head, content, truncated = await self._exchange(url, request, method, timer)
            location = head.headers.get("location") or head.headers.get("uri")
            if not self._follow or head.status not in _REDIRECTS or location is None:
                break
            chain.append((head.status, str(url)))
            if self._max_redirects and len(chain) >= self._max_redirects:
                raise ProbeError(
                    FailureKind.REDIRECTS, f"too many redirects (stopped after {len(chain)})"
                )
            if (head.status == 303 and method != "HEAD") or (
                head.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            target = _redirect_target(url, _text(location))
            if target.origin() != url.origin():
                headers = {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND}
            url = target
            request = _request_bytes(method, url, headers, body)
        location = head.headers.get("location")
        record = head.headers.get(self._record_header) if self._record_header else None
        secure = url.scheme == "https"
        return ProbeResponse(
            status=head.status,
            reason=head.reason,
            url=str(url),
            location=_text(location) if location is not None else None,
            chain=chain,
            body=content,
            truncated=truncated,
            charset=_charset(head.headers.get("content-type")),
            not_after=_not_after(timer.peercert) if secure else None,
            header=_text(record) if record is not None else None,
        )

    async def _exchange(
        self, url: URL, request: bytes, method: str, timer: PhaseTimer
    ) -> tuple[_Head, bytes, bool]:
        host = url.raw_host or ""
        secure = url.scheme == "https"
        port = url.port if url.port is not None else (443 if secure else 80)
        timer.connection_start(secure)
        loop = asyncio.get_running_loop()
        if _is_ip(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            addresses = [(int(family), (host, port))]
        else:
            addresses = await _resolve(loop, host, port, timer)
        exchange = _Exchange(loop, request, method == "HEAD", self._follow, self._cap, timer, host)
        transport = await self._connect(loop, exchange, addresses, host, port, secure, timer)
        timer.connection_end()
        try:
            return await exchange.done
        finally:
            transport.abort()

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        exchange: _Exchange,
        addresses: list[tuple[int, tuple[str, int]]],
        host: str,
        port: int,
        secure: bool,
        timer: PhaseTimer,
    ) -> asyncio.Transport:
        """Connects to the host (racing its addresses if it has several), then starts TLS
        on that connection for https."""
        try:
            if not secure and len(addresses) == 1:
                # the loop's own connect: on uvloop it runs in C, without a Python future
                family, (address, _port) = addresses[0]
                transport, _ = await loop.create_connection(
                    lambda: exchange, host=address, port=port, family=family
                )
                return transport
            sock = await _first_to_connect(loop, addresses)
            timer.tcp_connected(exchange)
            try:
                transport, _ = await loop.create_connection(
                    lambda: exchange,
                    sock=sock,
                    ssl=self._tls if secure else None,
                    server_hostname=host if secure else None,
                )
            except BaseException:
                sock.close()
                raise
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            raise ProbeError(
                FailureKind.TLS, f"TLS certificate of {host} rejected: {reason}"
            ) from None
        except ssl.SSLError as exc:
            raise ProbeError(
                FailureKind.TLS, f"TLS handshake with {host} failed: {_reason(exc)}"
            ) from None
        except OSError as exc:
            kind = FailureKind.MONITOR_RESOURCES if is_resource_error(exc) else FailureKind.CONNECT
            raise ProbeError(kind, f"could not connect to {host}:{port}: {_reason(exc)}") from None
        return transport


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _not_after(cert: dict[str, Any] | None) -> datetime | None:
    """The expiry of a verified peer certificate (`getpeercert()` form)."""
    if not cert or "notAfter" not in cert:
        return None  # not verified (tls_verify: false): the dict form is empty
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)


async def _connect_socket(
    loop: asyncio.AbstractEventLoop, family: int, address: tuple[str, int]
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def _interleaved(
    addresses: list[tuple[int, tuple[str, int]]],
) -> list[tuple[int, tuple[str, int]]]:
    """The resolver's order, alternating address families (RFC 8305, section 4)."""
    first = [a for a in addresses if a[0] == addresses[0][0]]
    other = [a for a in addresses if a[0] != addresses[0][0]]
    mixed: list[tuple[int, tuple[str, int]]] = []
    for i in range(max(len(first), len(other))):
        mixed += first[i : i + 1] + other[i : i + 1]
    return mixed


async def _first_to_connect(
    loop: asyncio.AbstractEventLoop, addresses: list[tuple[int, tuple[str, int]]]
) -> socket.socket:
    """A connected socket to the first address that answers.

    Happy Eyeballs (RFC 8305): the next address is tried when the last one failed or
    has not answered within `CONNECT_STAGGER_S`, while earlier attempts go on, so a
    black-holed address (often a broken IPv6 route) does not use up the probe's timeout.
    """
    if len(addresses) == 1:
        return await _connect_socket(loop, *addresses[0])
    queue = _interleaved(addresses)
    pending: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None
    error: BaseException | None = None
    try:
        while winner is None and (queue or pending):
            if queue:
                family, address = queue.pop(0)
                pending.add(loop.create_task(_connect_socket(loop, family, address)))
            done, pending = await asyncio.wait(
                pending,
                timeout=CONNECT_STAGGER_S if queue else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                if task.exception() is not None:
                    error = task.exception()
                elif winner is None:
                    winner = task.result()
                else:
                    task.result().close()
    finally:
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, socket.socket):
                result.close()  # connected just as another one won
    if winner is not None:
        return winner
    if isinstance(error, OSError):
        raise error
    raise OSError(f"no address answered: {error!r}")


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str, port: int, timer: PhaseTimer
) -> list[tuple[int, tuple[str, int]]]:
    """The host's addresses, in the resolver's order, without duplicates."""
    timer.dns_start()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
    except OSError as exc:
        raise ProbeError(FailureKind.DNS, f"could not resolve {host}: {_reason(exc)}") from None
    except UnicodeError:  # a label IDNA cannot encode: empty, or over 63 characters
        raise ProbeError(
            FailureKind.DNS, f"could not resolve {host}: not a valid host name"
        ) from None
    finally:
        timer.dns_end()
    timer.stage = "connecting"
    addresses: list[tuple[int, tuple[str, int]]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        entry = (int(family), (str(sockaddr[0]), int(sockaddr[1])))
        if entry not in addresses:
            addresses.append(entry)
    if not addresses:
        raise ProbeError(FailureKind.DNS, f"could not resolve {host}: no addresses")
    return addresses


def _redirect_target(url: URL, location: str) -> URL:
    try:
        target = URL(location)
    except ValueError:
        raise ProbeError(
            FailureKind.PROTOCOL, f"request failed: redirect to {location!r}, not a URL"
        ) from None
    if target.scheme not in ("", "http", "https"):
        raise ProbeError(
            FailureKind.PROTOCOL, f"request failed: redirect to a non-HTTP URL {location!r}"
        )
    try:
        if not target.scheme or not target.host:
            target = url.join(target)
        valid = bool(target.raw_host) and target.origin() is not None
    except ValueError:  # UnicodeError too: a host name IDNA cannot encode
        valid = False
    if not valid:
        raise ProbeError(
            FailureKind.PROTOCOL, f"request failed: redirect to {location!r}, not a valid URL"
        )
    return target
