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

The status line, headers and framing are parsed by llhttp through httptools; this module
is the policy around it: where a head ends and how long it may be, obs-fold and repeated
Content-Length, the end of a body without length, the length of chunk size lines, and
the codings of Transfer-Encoding and Content-Encoding.
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

import httptools
from yarl import URL

from monitor.checks.failures import certificate_rejected, handshake_failed, os_failure, os_reason
from monitor.checks.http.httpclient import PhaseTimer
from monitor.core.errors import ProbeError
from monitor.core.model import FailureKind

try:  # decoding br is an optional extra; 1.2 bounds the output of each step
    import brotli

    if not hasattr(brotli.Decompressor, "can_accept_more_data"):  # pragma: no cover
        brotli = None
except ImportError:  # pragma: no cover - depends on the installation
    brotli = None

__all__ = ["ProbeError", "ProbeResponse", "Prober", "unverified_context"]

_MAX_HEAD = 64 * 1024  # bytes of status line and headers, like a server's limit
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
# obs-fold: a line break followed by whitespace continues the previous header line
_FOLD = re.compile(rb"\r?\n[ \t]+")
_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_CONTENT_LENGTH_LINE = re.compile(rb"^content-length:[^\n]*\n", re.IGNORECASE | re.MULTILINE)
_LISTS = frozenset({"transfer-encoding", "content-encoding"})  # lists across their lines
CONNECT_STAGGER_S = 0.25  # Happy Eyeballs: the next address after this long
_MAX_CHUNK_LINE = 1024  # a chunk size with extensions; real ones are a few bytes
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# not sent to another origin: credentials, and a Host header meant for the first one
_ORIGIN_BOUND = ("authorization", "cookie", "proxy-authorization", "host")
ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"


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
            ("Accept-Encoding", ACCEPT_ENCODING),
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
        # lower-case names; the first of repeated headers, except the coding lists
        # (Transfer-Encoding, Content-Encoding), whose lines are joined with ", "
        self.headers = headers


def _head_end(buffer: bytes | bytearray, start: int = 0) -> int:
    """The end of the first head in `buffer` (after its empty line), -1 if not there yet;
    `start`: where a new line may begin that was not searched before.

    Lines may end in CRLF or a bare LF (RFC 9112, section 2.2); a bare CR is invalid
    anywhere in a head, so the first empty line is where the head ends.
    """
    crlf = buffer.find(b"\n\r\n", start)
    lf = buffer.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


def _prepared(head: bytes) -> bytes:
    """A complete head as llhttp is to read it: obs-fold lines unfolded (RFC 9112,
    section 5.2: a user agent replaces each with SP) and Content-Length lines or lists
    with one value repeated reduced to one line (RFC 9110, section 8.6). Raises
    ValueError for Content-Length values that differ."""
    first = head.find(b"\n") + 1
    if head.find(b"\n ", first) >= 0 or head.find(b"\n\t", first) >= 0:
        head = head[:first] + _FOLD.sub(b" ", head[first:])
    lowered = head.lower()
    at = lowered.find(b"\ncontent-length:")
    if at >= 0 and (
        lowered.find(b"\ncontent-length:", at + 1) >= 0
        or lowered.find(b",", at, lowered.find(b"\n", at + 1)) >= 0
    ):
        lines = _CONTENT_LENGTH.findall(head)
        if lines:
            values = {v.strip(b" \t") for line in lines for v in line.split(b",")}
            if len(values) > 1:
                shown = sorted(v.decode("latin-1") for v in values)
                raise ValueError(f"conflicting Content-Length headers {shown}")
            seen = False
            (value,) = values

            def once(match: re.Match[bytes]) -> bytes:
                nonlocal seen
                keep, seen = not seen, True
                return b"Content-Length: " + value + b"\r\n" if keep else b""

            head = _CONTENT_LENGTH_LINE.sub(once, head)
    return head


def _codings(value: str) -> list[str]:
    """The codings of a Transfer-Encoding or Content-Encoding value, in order applied."""
    return [c for c in (part.strip(" \t").lower() for part in value.split(",")) if c]


class _Gzip:
    """A gzip body of one or more members (RFC 1952, section 2.2)."""

    __slots__ = ("_decoder", "_ended", "_rest")

    def __init__(self) -> None:
        self._decoder: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._rest = b""  # after a member: the next one's first byte, until it is known
        self._ended = False  # what followed a member was not another one

    def decode(self, data: bytes, room: int) -> bytes:
        decoder = self._decoder
        if decoder is None:  # between members
            if self._ended:
                return b""  # bytes after the end of the compressed stream are dropped
            data = self._rest + data
            if len(data) < 2:
                self._rest = data
                return b""
            self._rest = b""
            if data[:2] != b"\x1f\x8b":
                self._ended = True
                return b""
            decoder = self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = decoder.decompress(decoder.unconsumed_tail + data, room)
        if decoder.eof:
            self._decoder = None
            more = decoder.unused_data
            if more:
                if len(out) < room:
                    out += self.decode(more, room - len(out))
                else:
                    self._rest = more[:2]  # the cap is reached: no more output needed
        return out

    def pending(self) -> bool:
        return self._decoder is not None and bool(self._decoder.unconsumed_tail)

    def flush(self) -> bytes:
        return self._decoder.flush() if self._decoder is not None else b""


class _Deflate:
    """A deflate body: RFC 1950's zlib format, or raw deflate as some servers send it,
    told apart by its first two bytes."""

    __slots__ = ("_decoder", "_start")

    def __init__(self) -> None:
        self._decoder: zlib._Decompress | None = None
        self._start = b""

    def decode(self, data: bytes, room: int) -> bytes:
        decoder = self._decoder
        if decoder is None:
            data = self._start + data
            if len(data) < 2:
                self._start = data
                return b""
            self._start = b""
            # RFC 1950's header: compression method 8 and a check over the two bytes
            wrapped = data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            decoder = self._decoder = zlib.decompressobj(
                zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
            )
        if decoder.eof:
            return b""  # bytes after the end of the compressed stream are dropped
        return decoder.decompress(decoder.unconsumed_tail + data, room)

    def pending(self) -> bool:
        return self._decoder is not None and bool(self._decoder.unconsumed_tail)

    def flush(self) -> bytes:
        return self._decoder.flush() if self._decoder is not None else b""


class _Brotli:
    """A br body (RFC 7932), with the optional `brotli` package."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = brotli.Decompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        if self._decoder.is_finished():
            if data:  # as the decoder says when they come with the stream's end
                raise brotli.error("bytes after the end of the br stream")
            return b""
        return cast(bytes, self._decoder.process(data, output_buffer_limit=room))

    def pending(self) -> bool:
        return not self._decoder.is_finished() and not self._decoder.can_accept_more_data()

    def flush(self) -> bytes:
        return b""


_Decoder = _Gzip | _Deflate | _Brotli
_DECODERS: dict[str, type[_Decoder]] = {"gzip": _Gzip, "x-gzip": _Gzip, "deflate": _Deflate}
if brotli is not None:
    _DECODERS["br"] = _Brotli
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + (
    (brotli.error,) if brotli is not None else ()
)


def _decoders(codings: list[str]) -> list[_Decoder]:
    """Decoders for codings in the order they were applied: the last applied first.
    Raises ProbeError (content) naming a coding that cannot be undone."""
    stages: list[_Decoder] = []
    for coding in reversed(codings):
        if coding == "identity":
            continue
        kind = _DECODERS.get(coding)
        if kind is None:
            raise ProbeError(
                FailureKind.CONTENT,
                f"the response body is encoded with {coding!r}, which the monitor cannot decode",
            )
        stages.append(kind())
    return stages


class _Reader:
    """httptools' callbacks for one response head: status, reason and headers."""

    __slots__ = ("headers", "reason")

    def __init__(self) -> None:
        self.reason = b""
        self.headers: dict[str, str] = {}

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers = self.headers
        if key not in headers:
            headers[key] = text
        elif key in _LISTS:
            headers[key] += ", " + text


def _new_parser(protocol: object) -> httptools.HttpResponseParser:
    parser = httptools.HttpResponseParser(protocol)
    # Lenient only where RFC 9112 lets a recipient be: a bare LF ending the status
    # line or a header line (section 2.2), and whitespace (BWS) between a chunk size
    # and its extensions (section 7.1.1). Strict everywhere else.
    parser.set_dangerous_leniencies(
        lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
    )
    return parser


def _feed_head(parser: httptools.HttpResponseParser, headers: dict[str, str], head: bytes) -> None:
    """Feeds one complete head to llhttp. Raises ValueError saying which line it refused."""
    head = _prepared(head)
    if not head.startswith(b"HTTP/1."):
        line = head.split(b"\n", 1)[0]
        raise ValueError(f"not an HTTP/1 status line: {_shown_line(line)}")
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # a 101: the response that ends the exchange
    except httptools.HttpParserError as exc:
        line, _, rest = head.partition(b"\n")
        if not headers:  # the status line, or the first header line?
            try:
                _new_parser(_Reader()).feed_data(line + b"\n")
            except httptools.HttpParserError:
                raise ValueError(
                    f"not an HTTP/1 status line: {_shown_line(line)} ({exc})"
                ) from None
        raise ValueError(_header_error(rest, str(exc), len(headers))) from None


def _header_error(lines: bytes, reason: str, parsed: int) -> str:
    """llhttp's reason for refusing header lines, with the line it stopped at."""
    if "Content-Length" in reason:
        for value in _CONTENT_LENGTH.findall(lines):
            if not value.strip(b" \t").isdigit():
                shown = value.strip(b" \t").decode("latin-1")
                return f"Content-Length {shown!r} is not a number ({reason})"
    at = lines.split(b"\n")
    return f"malformed header line {_shown_line(at[min(parsed, len(at) - 1)])} ({reason})"


def _shown_line(line: bytes) -> str:
    return repr(line.rstrip(b"\r\n")[:80].decode("latin-1"))


def _parse_head(raw: bytes) -> _Head:
    """One response head (without its empty line), as the exchange reads it."""
    reader = _Reader()
    parser = _new_parser(reader)
    _feed_head(parser, reader.headers, raw + b"\r\n\r\n")
    return _Head(parser.get_status_code(), _text(reader.reason.decode("latin-1")), reader.headers)


class _Exchange(asyncio.Protocol):
    """One request written and one response read on one connection.

    llhttp (through httptools) parses the status line, headers and framing; this class
    bounds the head, finds where each head ends, reads a body without length to the
    end of the connection, bounds chunk size lines, decodes and caps the body.

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
        self._received = False
        self._pending: bytearray | None = None  # a head so far, while incomplete
        self._searched = 0  # how far it has been searched for its end
        self._reason = b""
        self._headers: dict[str, str] = {}
        self._parser = _new_parser(self)
        self._head: _Head | None = None
        self._left = -1  # body bytes still expected: -1 until close, -2 chunked
        self._stages: list[_Decoder] = []
        self._parts: list[bytes] = []
        self._size = 0
        # chunked: where llhttp is in the bytes being fed, and the size line so far
        self._data = b""
        self._pos = 0
        self._line = -1  # bytes of the current chunk size line, -1 outside one
        self._line_start = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self._received = True
        try:
            if self._head is None:
                rest = self._read_head(data)
                if not rest or self.done.done():
                    return
                data = rest
            self._read_body(data)
        except ValueError as exc:
            self._fail(FailureKind.PROTOCOL, f"invalid HTTP response from {self._host}: {exc}")
        except ProbeError as exc:
            self._fail(exc.failure, exc.message)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self._fail(FailureKind.DISCONNECTED, f"connection error: {exc}")
        elif self._head is None:
            got = "an incomplete response head" if self._received else "no response"
            self._fail(
                FailureKind.DISCONNECTED,
                f"connection dropped before the response was complete: {got} from {self._host}",
            )
        elif self._left == -1:
            self._finish(False)  # no Content-Length, not chunked: the body ends here
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
        """Feeds whole heads to llhttp (skipping 1xx); returns the body's start, None
        while the head is incomplete."""
        buffer: bytes | bytearray
        if self._pending is None:
            buffer, start = data, 0
        else:  # a bytearray grows in place: a head cut into many pieces costs linear time
            self._pending += data
            buffer, start = self._pending, self._searched
        while self._head is None:
            end = _head_end(buffer, start)
            if end > _MAX_HEAD:
                raise ValueError(f"response headers longer than {_MAX_HEAD} bytes")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise ValueError(f"no end of the headers in the first {_MAX_HEAD} bytes")
                if buffer is not self._pending:
                    self._pending = bytearray(buffer)
                self._searched = max(0, len(buffer) - 2)
                return None
            _feed_head(self._parser, self._headers, bytes(buffer[:end]))
            buffer, start = buffer[end:], 0
            if self.done.done():
                return None
        self._pending = None
        return bytes(buffer)

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head is not None:
            return  # trailers are not read
        key = name.decode("latin-1").lower()
        headers = self._headers
        if key not in headers:
            headers[key] = value.strip(b" \t").decode("latin-1")
        elif key in _LISTS:
            headers[key] += ", " + value.strip(b" \t").decode("latin-1")

    def on_headers_complete(self) -> None:
        try:
            self._headers_complete()
        except ValueError as exc:
            self._fail(FailureKind.PROTOCOL, f"invalid HTTP response from {self._host}: {exc}")
        except ProbeError as exc:
            self._fail(exc.failure, exc.message)

    def _headers_complete(self) -> None:
        status = self._parser.get_status_code()
        headers = self._headers
        if 100 <= status < 200 and status != 101:
            self._headers, self._reason = {}, b""  # an interim response: the real one follows
            return
        self._head = _Head(status, _text(self._reason.decode("latin-1")), headers)
        self._timer.headers_received()
        if (
            self._head_only
            or status in _NO_BODY
            or status == 101
            or (
                self._follow
                and status in _REDIRECTS
                and ("location" in headers or "uri" in headers)
            )
        ):
            self._finish(False)
            return
        transfer = _codings(headers["transfer-encoding"]) if "transfer-encoding" in headers else []
        codings = _codings(headers["content-encoding"]) if "content-encoding" in headers else []
        if transfer:
            # RFC 9112, section 6.3, as llhttp frames it: chunked when it is the final
            # coding, else the body runs to the end of the connection
            if transfer[-1] == "chunked":
                self._left, self._line = -2, 0
                transfer.pop()
            value = headers["transfer-encoding"]
            if "chunked" in transfer:
                raise ValueError(f"Transfer-Encoding {value!r}: chunked is not the final coding")
            if any(";" in coding for coding in transfer):
                raise ValueError(f"Transfer-Encoding {value!r}: a coding with parameters")
            codings += transfer  # other transfer codings are undone like content codings
        elif (length := headers.get("content-length")) is not None:
            self._left = int(length)  # digits only: llhttp checked
        if codings:
            self._stages = _decoders(codings)
        if self._left == 0:
            self._finish(False)

    def _read_body(self, data: bytes) -> None:
        chunked = self._left == -2
        if chunked:
            self._data, self._pos = data, 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.done.done():  # else: bytes after the response, not read
                raise ValueError(str(exc)) from None
        if chunked and self._line >= 0 and not self.done.done():
            if self._line < 64:
                self._line_start += data[self._pos : self._pos + 64]
            self._line += len(data) - self._pos
            if self._line > _MAX_CHUNK_LINE + 1:  # its CR may have come already
                raise ValueError(f"chunk size line longer than {_MAX_CHUNK_LINE} bytes")
        self._data = b""

    # llhttp's callbacks while a body is fed; each runs inside `feed_data`

    def on_chunk_header(self) -> None:
        """A chunk size line has ended: at the first LF from where it began."""
        if self.done.done():
            return
        data, pos = self._data, self._pos
        end = data.find(b"\n", pos) + 1
        line = self._line_start + data[pos:end] if self._line_start else data[pos:end]
        if self._line + end - pos - 2 > _MAX_CHUNK_LINE:  # without its CRLF
            message = f"chunk size line longer than {_MAX_CHUNK_LINE} bytes"
            self._fail(FailureKind.PROTOCOL, f"invalid HTTP response from {self._host}: {message}")
            return
        self._pos, self._line, self._line_start = end, -1, b""
        size = re.match(rb"[0-9A-Fa-f]*", line)
        if size is not None and not size.group(0).strip(b"0"):
            self._finish(False)  # the last chunk; trailers, if any, are not needed

    def on_chunk_complete(self) -> None:
        if self._line == -1:  # the CRLF after a chunk's data: a size line follows
            self._pos = self._data.find(b"\n", self._pos) + 1
            self._line = 0

    def on_body(self, data: bytes) -> None:
        if self.done.done():
            return
        if self._left >= 0:
            self._left -= len(data)
        elif self._left == -2:
            self._pos += len(data)
        try:
            self._keep(data)
        except _DECODE_ERRORS as exc:
            self._fail(FailureKind.PROTOCOL, f"could not decode the response body: {exc}")

    def on_message_complete(self) -> None:
        if self._head is not None:
            self._finish(False)

    def _keep(self, data: bytes) -> None:
        """Adds body bytes; finishes once more than `cap` decoded bytes have arrived."""
        room = self._cap + 1 - self._size
        stages = self._stages
        if stages:
            for stage in stages:
                data = stage.decode(data, room)
            while len(data) < room and any(stage.pending() for stage in stages):
                more = b""
                for stage in stages:
                    more = stage.decode(more, room - len(data))
                if not more and not any(stage.pending() for stage in stages):
                    break
                data += more
        elif len(data) > room:
            data = data[:room]
        self._parts.append(data)
        self._size += len(data)
        if self._size > self._cap:
            self._finish(True)

    def _finish(self, truncated: bool) -> None:
        head = self._head
        if head is None or self.done.done():
            return
        if not truncated and self._stages and self._size <= self._cap:
            try:
                rest = b""
                for stage in self._stages:
                    rest = stage.decode(rest, self._cap + 1 - self._size) + stage.flush()
            except _DECODE_ERRORS as exc:
                self._fail(FailureKind.PROTOCOL, f"could not decode the response body: {exc}")
                return
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
            chain.append((head.status, _shown(url)))
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
            url=_shown(url),
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
            raise ProbeError(*certificate_rejected(host, exc.verify_message or str(exc))) from None
        except ssl.SSLError as exc:
            raise ProbeError(*handshake_failed(host, os_reason(exc))) from None
        except OSError as exc:
            raise ProbeError(
                os_failure(exc), f"could not connect to {host}:{port}: {os_reason(exc)}"
            ) from None
        return transport


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
        raise ProbeError(FailureKind.DNS, f"could not resolve {host}: {os_reason(exc)}") from None
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


def _shown(url: URL) -> str:
    """A URL as results show it: without userinfo, and with `/` for an empty path (the
    path the request was made for)."""
    if url.raw_user is not None or url.raw_password is not None:
        url = url.with_user(None)
    text = str(url)
    scheme, _, rest = text.partition("://")
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    if "/" not in rest[:cut]:  # yarl prints http://host:port for http://host:port/
        text = f"{scheme}://{rest[:cut]}/{rest[cut:]}"
    return text


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
