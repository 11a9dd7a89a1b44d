"""The HTTP check's own client on the wire: framing, encodings, redirects, bad servers.

Each test provokes one behaviour from a real local server: aiohttp's for well-formed
HTTP, a bare TCP server for exact bytes (interim responses, odd framing, broken peers).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from monitor.checks import CheckContext
from monitor.checks.http import probe
from monitor.checks.http.check import HttpCheck, HttpCheckConfig
from monitor.checks.http.httpclient import PhaseTimer, make_session
from monitor.checks.http.probe import _Exchange, _parse_head
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Outcome

PAGE = "<html><body>Wing, the cloud-oriented language</body></html>"


@pytest.fixture
def check_for(session: aiohttp.ClientSession) -> Callable[..., HttpCheck]:
    def build(url: str, **fields: Any) -> HttpCheck:
        fields.setdefault("timeout", "5s")
        config = HttpCheckConfig(name="t", kind="http", url=url, **fields).resolved(Defaults())
        return HttpCheck(config, CheckContext(session=session, clock=SystemClock()))

    return build


async def serve(aiohttp_server: Any, routes: dict[str, Any]) -> Any:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    return await aiohttp_server(app)


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE)


class RawServer:
    """A TCP server that reads one request head (and body, by Content-Length), keeps
    it, writes `reply` and hangs up."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            self.requests.append(head + body)
            writer.write(self.reply)
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/page?q=1"


async def probe_raw(check_for: Callable[..., HttpCheck], reply: bytes, **fields: Any) -> Any:
    async with RawServer(reply) as server:
        return await check_for(server.url, **fields).run()


class TestRequestOnTheWire:
    async def test_request_head(self, check_for) -> None:
        async with RawServer(b"HTTP/1.1 204 No Content\r\n\r\n") as server:
            obs = await check_for(server.url, headers={"X-Probe": "yes"}).run()
        assert obs.outcome is Outcome.UP, obs.message
        lines = server.requests[0].decode().split("\r\n")
        assert lines[0] == "GET /page?q=1 HTTP/1.1"
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
        assert headers["host"] == f"127.0.0.1:{server.port}"
        assert headers["connection"] == "close"
        assert headers["user-agent"].startswith("project-asset-monitor/")
        assert headers["x-probe"] == "yes"
        assert "content-length" not in headers

    async def test_configured_headers_replace_the_defaults(self, check_for) -> None:
        async with RawServer(b"HTTP/1.1 204 No Content\r\n\r\n") as server:
            await check_for(
                server.url,
                method="PUT",
                body="Wing",
                headers={"user-agent": "probe/1", "Content-Type": "text/plain"},
            ).run()
        request = server.requests[0].decode()
        assert request.startswith("PUT /page?q=1 HTTP/1.1\r\n")
        assert request.count("probe/1") == 1
        assert "project-asset-monitor" not in request
        assert "Content-Type: text/plain\r\n" in request
        assert "application/octet-stream" not in request
        assert "\r\nContent-Length: 4\r\n" in request
        assert request.endswith("\r\n\r\nWing")

    async def test_session_user_agent_is_used(self, check_for) -> None:
        async with (
            make_session("wing-monitor/2") as session,
            RawServer(b"HTTP/1.1 204 No Content\r\n\r\n") as server,
        ):
            config = HttpCheckConfig(name="t", kind="http", url=server.url).resolved(Defaults())
            await HttpCheck(config, CheckContext(session=session, clock=SystemClock())).run()
        assert b"\r\nUser-Agent: wing-monitor/2\r\n" in server.requests[0]

    @pytest.mark.parametrize("headers", [{"X-A": "1\r\nX-B: 2"}, {"Bad Name": "1"}])
    def test_headers_that_cannot_be_sent_are_config_errors(self, headers) -> None:
        with pytest.raises(ValueError, match="header"):
            HttpCheckConfig(name="t", kind="http", url="http://x", headers=headers)


class TestFraming:
    async def test_chunked_body(self, aiohttp_server, check_for) -> None:
        async def chunked(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for word in ("Wing, ", "the cloud-", "oriented language"):
                await resp.write(word.encode())
            await resp.write_eof()
            return resp

        server = await serve(aiohttp_server, {"/": chunked})
        obs = await check_for(
            str(server.make_url("/")), expect={"body_contains": ["the cloud-oriented language"]}
        ).run()
        assert obs.outcome is Outcome.UP, obs.message

    async def test_chunked_with_extensions_and_trailers(self, check_for) -> None:
        reply = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=x\r\nWing,\r\n6\r\n cloud\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        obs = await probe_raw(check_for, reply, expect={"body_regex": ["^Wing, cloud$"]})
        assert obs.outcome is Outcome.UP, obs.message

    async def test_body_until_close(self, check_for) -> None:
        reply = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + PAGE.encode()
        obs = await probe_raw(check_for, reply, expect={"body_contains": ["cloud-oriented"]})
        assert obs.outcome is Outcome.UP, obs.message

    async def test_interim_response_is_skipped(self, check_for) -> None:
        reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nWing"
        obs = await probe_raw(check_for, reply, expect={"body_contains": ["Wing"]})
        assert (obs.outcome, obs.details["status"]) == (Outcome.UP, 200)

    async def test_head_reads_no_body(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"  # no body follows
        obs = await probe_raw(check_for, reply, method="HEAD")
        assert obs.outcome is Outcome.UP, obs.message

    async def test_first_of_repeated_headers_is_recorded(self, check_for) -> None:
        reply = (
            b"HTTP/1.1 200 OK\r\nX-Version:  0.85.48 \r\nx-version: 0.1\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        obs = await probe_raw(check_for, reply, record={"header": "X-VERSION"})
        assert obs.details["recorded"] == "0.85.48"

    @pytest.mark.parametrize(
        ("content_type", "found"),
        [("text/html; charset=ISO-8859-1", True),
         ('text/html; charset="latin-1"', True),
         ("text/html; charset=no-such-codec", False),  # read as UTF-8, no crash
         ("text/html", False)],
    )  # fmt: skip
    async def test_charset(self, check_for, content_type: str, found: bool) -> None:
        body = "Café Wing".encode("latin-1")
        reply = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        obs = await probe_raw(check_for, reply, expect={"body_contains": ["Café"]})
        assert (obs.outcome is Outcome.UP) is found, obs.message


class TestEncodings:
    async def test_gzip(self, aiohttp_server, check_for) -> None:
        seen: list[str] = []

        async def compressed(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Accept-Encoding", ""))
            resp = web.Response(text=PAGE * 50, content_type="text/html")
            resp.enable_compression(web.ContentCoding.gzip)
            return resp

        server = await serve(aiohttp_server, {"/": compressed})
        obs = await check_for(
            str(server.make_url("/")), expect={"body_regex": ["language</body></html>$"]}
        ).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert "gzip" in seen[0]

    @pytest.mark.parametrize("wrapped", [True, False])
    async def test_deflate_with_and_without_zlib_header(self, check_for, wrapped: bool) -> None:
        if wrapped:
            body = zlib.compress(PAGE.encode())
        else:
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body = packer.compress(PAGE.encode()) + packer.flush()
        reply = (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        obs = await probe_raw(check_for, reply, expect={"body_contains": ["cloud-oriented"]})
        assert obs.outcome is Outcome.UP, obs.message

    async def test_cap_applies_to_decoded_bytes(self, check_for) -> None:
        body = gzip.compress(b"Wing " * 200_000)  # 1 MB that packs into a few KB
        reply = (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        obs = await probe_raw(check_for, reply, max_body="10KiB", expect={"body_contains": ["W"]})
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["body_truncated_at"] == 10 * 1024

    async def test_exactly_cap_bytes_is_not_truncated(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + b"W" * 1024
        obs = await probe_raw(check_for, reply, max_body="1KiB")
        assert obs.outcome is Outcome.UP, obs.message
        assert "body_truncated_at" not in obs.details

    async def test_corrupt_gzip_is_a_protocol_failure(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
        obs = await probe_raw(check_for, reply)
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.PROTOCOL)
        assert obs.message.startswith("could not decode the response body")


class TestRedirects:
    @pytest.fixture
    async def server(self, aiohttp_server) -> Any:
        seen: list[tuple[str, str, bytes, str | None]] = []

        async def record(request: web.Request) -> None:
            body = await request.read()
            seen.append((request.method, request.path, body, request.headers.get("Authorization")))

        async def see_other(request: web.Request) -> web.Response:
            await record(request)
            raise web.HTTPSeeOther("/final")

        async def temporary(request: web.Request) -> web.Response:
            await record(request)
            raise web.HTTPTemporaryRedirect("final")  # relative to /a/temporary

        async def moved(request: web.Request) -> web.Response:
            await record(request)
            raise web.HTTPFound("../final")

        async def final(request: web.Request) -> web.Response:
            await record(request)
            return web.Response(text=PAGE)

        routes = {"/see-other": see_other, "/a/temporary": temporary, "/a/b/moved": moved}
        routes |= {"/final": final, "/a/final": final}
        srv = await serve(aiohttp_server, routes)
        srv.seen = seen
        return srv

    async def test_303_turns_a_post_into_a_get(self, server, check_for) -> None:
        obs = await check_for(str(server.make_url("/see-other")), method="POST", body="x").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert [(m, p, b) for m, p, b, _ in server.seen] == [
            ("POST", "/see-other", b"x"), ("GET", "/final", b""),
        ]  # fmt: skip

    async def test_307_keeps_method_and_body_and_resolves_relative(self, server, check_for) -> None:
        obs = await check_for(str(server.make_url("/a/temporary")), method="POST", body="x").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["final_url"] == str(server.make_url("/a/final"))
        assert [(m, p, b) for m, p, b, _ in server.seen] == [
            ("POST", "/a/temporary", b"x"), ("POST", "/a/final", b"x"),
        ]  # fmt: skip

    async def test_302_after_post_is_a_get_and_dot_dot_resolves(self, server, check_for) -> None:
        obs = await check_for(str(server.make_url("/a/b/moved")), method="POST", body="x").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert [(m, p) for m, p, _, _ in server.seen] == [
            ("POST", "/a/b/moved"),
            ("GET", "/a/final"),
        ]
        assert obs.details["redirects"] == [
            {"status": 302, "url": str(server.make_url("/a/b/moved"))}
        ]

    async def test_credentials_stay_on_the_origin(self, server, check_for) -> None:
        # the same server under another name is another origin
        other = f"http://localhost:{server.port}/final"

        async with RawServer(
            f"HTTP/1.1 302 Found\r\nLocation: {other}\r\nContent-Length: 0\r\n\r\n".encode()
        ) as hop:
            obs = await check_for(hop.url, headers={"Authorization": "Bearer secret"}).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert b"Authorization: Bearer secret" in hop.requests[0]
        assert server.seen[-1][3] is None
        await check_for(
            str(server.make_url("/see-other")), headers={"Authorization": "Bearer secret"}
        ).run()
        assert server.seen[-1][3] == "Bearer secret"

    async def test_redirect_to_another_scheme(self, check_for) -> None:
        reply = b"HTTP/1.1 301 Moved\r\nLocation: ftp://example.org/\r\nContent-Length: 0\r\n\r\n"
        obs = await probe_raw(check_for, reply)
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.PROTOCOL)
        assert "non-HTTP URL 'ftp://example.org/'" in obs.message

    async def test_redirect_without_location_is_the_final_response(self, check_for) -> None:
        obs = await probe_raw(check_for, b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
        assert obs.message == "expected status 2xx, got 302 Found"
        assert "redirects" not in obs.details


class TestBadServers:
    @pytest.mark.parametrize(
        ("reply", "failure", "words"),
        [(b"", FailureKind.DISCONNECTED, "no response"),
         (b"HTTP/1.1 200 OK\r\nContent-", FailureKind.DISCONNECTED, "incomplete response head"),
         (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nWing",
          FailureKind.DISCONNECTED, "chunked body"),
         (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", FailureKind.PROTOCOL, "'ten'"),
         (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", FailureKind.PROTOCOL,
          "chunk size"),
         (b"HTTP/1.1 OK\r\n\r\n", FailureKind.PROTOCOL, "status line"),
         (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", FailureKind.PROTOCOL, "header line"),
         (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000, FailureKind.PROTOCOL, "end of the headers")],
    )  # fmt: skip
    async def test_classified(self, check_for, reply: bytes, failure, words: str) -> None:
        obs = await probe_raw(check_for, reply)
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, failure)
        assert words in obs.message


class TestAddresses:
    async def test_next_address_after_a_refusal(self, aiohttp_server, check_for) -> None:
        """`localhost` names ::1 and 127.0.0.1; a server on one of them is found either way."""
        app = web.Application()
        app.router.add_get("/", page)
        server = await aiohttp_server(app, host="127.0.0.1")
        infos = socket.getaddrinfo("localhost", server.port, type=socket.SOCK_STREAM)
        obs = await check_for(f"http://localhost:{server.port}/").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert "dns" in obs.phases
        assert {info[4][0] for info in infos} >= {"127.0.0.1"}

    @staticmethod
    def resolve_to(monkeypatch, addresses: list[str]) -> None:
        """The host name resolves to `addresses`, in that order."""

        async def resolve(_loop: Any, _host: str, port: int, timer: PhaseTimer) -> Any:
            timer.dns_start()
            timer.dns_end()
            return [(socket.AF_INET, (address, port)) for address in addresses]

        monkeypatch.setattr(probe, "_resolve", resolve)

    async def test_a_black_holed_address_does_not_use_up_the_timeout(
        self, aiohttp_server, check_for, monkeypatch
    ) -> None:
        """Happy Eyeballs: while the first address does not answer, the next is tried."""
        app = web.Application()
        app.router.add_get("/", page)
        server = await aiohttp_server(app, host="127.0.0.1")
        loop = asyncio.get_running_loop()
        real_connect = loop.sock_connect
        abandoned = asyncio.Event()

        async def sock_connect(sock: socket.socket, address: Any) -> None:
            if address[0] == "192.0.2.1":  # TEST-NET-1: the SYN goes nowhere
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    abandoned.set()
                    raise
            await real_connect(sock, address)

        monkeypatch.setattr(loop, "sock_connect", sock_connect)
        self.resolve_to(monkeypatch, ["192.0.2.1", "127.0.0.1"])
        obs = await check_for(f"http://wing.test:{server.port}/", timeout="3s").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert abandoned.is_set()  # the losing attempt was stopped, its socket closed

    async def test_every_address_refused(self, check_for, monkeypatch) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            self.resolve_to(monkeypatch, ["127.0.0.1", "127.0.0.2"])
            obs = await check_for(f"http://wing.test:{port}/").run()
        assert obs.failure is FailureKind.CONNECT
        assert obs.message.startswith(f"could not connect to wing.test:{port}: ")

    def test_families_alternate(self) -> None:
        v6 = [(socket.AF_INET6, (f"::{i}", 443)) for i in (1, 2, 3)]
        v4 = [(socket.AF_INET, (f"10.0.0.{i}", 443)) for i in (1, 2)]
        order = [a[1][0] for a in probe._interleaved([*v6, *v4])]
        assert order == ["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"]

    async def test_ipv6_literal(self, aiohttp_server, check_for) -> None:
        if not socket.has_ipv6:
            pytest.skip("no IPv6 on this machine")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            pytest.skip("no ::1 on this machine")
        app = web.Application()
        app.router.add_get("/", page)
        server = await aiohttp_server(app, host="::1")
        obs = await check_for(f"http://[::1]:{server.port}/").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert "dns" not in obs.phases  # an address needs no lookup


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_no_socket_is_left_open(aiohttp_server, check_for) -> None:
    """Every way a probe ends closes its socket: success, cap, timeout, refusal, garbage."""
    never = asyncio.Event()

    async def hang(_r: web.Request) -> web.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async def big(_r: web.Request) -> web.Response:
        return web.Response(body=b"W" * 200_000)

    server = await serve(aiohttp_server, {"/": page, "/hang": hang, "/big": big})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
        probes = [
            check_for(str(server.make_url("/"))),
            check_for(str(server.make_url("/big")), max_body="1KiB"),
            check_for(str(server.make_url("/hang")), timeout="20ms"),
            check_for(refused),
        ]
        for check in probes:  # warm-up: the loop's own descriptors exist from here on
            await check.run()
        baseline = open_fds()
        outcomes = {(await check.run()).outcome for _ in range(10) for check in probes}
        async with RawServer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as raw:
            for _ in range(10):
                await check_for(raw.url).run()
    assert outcomes == {Outcome.UP, Outcome.DOWN}
    deadline = asyncio.get_running_loop().time() + 5
    while open_fds() > baseline and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)  # closing finishes in the loop's next turns
    assert open_fds() <= baseline


class TestOnUvloop:
    """The daemon runs on uvloop when it is installed: the same client, the same results."""

    @staticmethod
    def run(scenario: Callable[[], Any]) -> Any:
        loop_module = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=loop_module.new_event_loop) as runner:
            return runner.run(scenario())

    @staticmethod
    async def probe(url: str, **fields: Any) -> Any:
        fields.setdefault("timeout", "5s")
        config = HttpCheckConfig(name="t", kind="http", url=url, **fields).resolved(Defaults())
        async with make_session() as session:
            return await HttpCheck(config, CheckContext(session=session, clock=SystemClock())).run()

    @staticmethod
    async def site(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Any:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        return runner, port

    def test_plain_redirect_gzip_and_failures(self) -> None:
        async def scenario() -> list[Any]:
            never = asyncio.Event()

            async def compressed(_r: web.Request) -> web.Response:
                resp = web.Response(text=PAGE * 20)
                resp.enable_compression(web.ContentCoding.gzip)
                return resp

            async def moved(_r: web.Request) -> web.Response:
                raise web.HTTPFound("/page")

            async def hang(_r: web.Request) -> web.Response:
                await never.wait()
                raise AssertionError("unreachable")

            app = web.Application()
            app.router.add_get("/page", compressed)
            app.router.add_get("/moved", moved)
            app.router.add_get("/hang", hang)
            runner, port = await self.site(app)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                refused = s.getsockname()[1]
                try:
                    return [
                        await self.probe(
                            f"http://localhost:{port}/moved",
                            expect={"body_regex": ["language</body></html>$"]},
                        ),
                        await self.probe(f"http://127.0.0.1:{port}/hang", timeout="50ms"),
                        await self.probe(f"http://127.0.0.1:{refused}/"),
                    ]
                finally:
                    never.set()  # the hanging handler ends, so the server stops at once
                    await runner.cleanup()

        ok, hung, refused = self.run(scenario)
        assert ok.outcome is Outcome.UP, ok.message
        assert [h["status"] for h in ok.details["redirects"]] == [302]
        assert {"dns", "connect", "first_byte"} <= set(ok.phases)
        assert hung.message.endswith("(timed out waiting for the response headers)")
        assert refused.failure is FailureKind.CONNECT

    def test_tls(self, tmp_path) -> None:
        ca = trustme.CA()
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
        leaf = ca.issue_cert("localhost", not_after=not_after)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(server_ctx)

        async def scenario() -> list[Any]:
            app = web.Application()
            app.router.add_get("/", page)
            runner, port = await self.site(app, server_ctx)
            try:
                url = f"https://localhost:{port}/"
                return [
                    await self.probe(url, tls_ca_file=str(ca_file)),
                    await self.probe(url),
                    await self.probe(url, tls_verify=False),
                ]
            finally:
                await runner.cleanup()

        trusted, untrusted, unverified = self.run(scenario)
        assert trusted.outcome is Outcome.UP, trusted.message
        assert trusted.details["tls_not_after"] == not_after
        assert trusted.phases["tls"] > 0
        assert trusted.phases["connect"] > 0
        assert untrusted.failure is FailureKind.TLS
        assert untrusted.message.startswith("TLS certificate of localhost rejected: ")
        assert unverified.outcome is Outcome.UP
        assert "tls_not_after" not in unverified.details


class TestHostileServers:
    """What a broken or hostile server sends costs bounded time and memory."""

    def test_a_long_header_value_parses_in_linear_time(self) -> None:
        value = "a" + " " * 60_000 + "b"
        head = _parse_head(f"HTTP/1.1 200 OK\r\nX: {value}\r\nContent-Length: 2".encode())
        assert head.headers["x"] == value
        assert head.headers["content-length"] == "2"

    async def test_a_complete_head_over_the_limit(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\nok"
        obs = await probe_raw(check_for, reply)
        assert obs.failure is FailureKind.PROTOCOL
        assert "response headers longer than 65536 bytes" in obs.message

    @pytest.mark.parametrize(
        ("header", "words"),
        [(b"Content-Length : 2", "malformed header line"),
         (b"Content-Length: 2\r\nContent-Length: 3", "conflicting Content-Length")],
    )  # fmt: skip
    async def test_ambiguous_framing_is_refused(self, check_for, header, words) -> None:
        obs = await probe_raw(check_for, b"HTTP/1.1 200 OK\r\n" + header + b"\r\n\r\nok")
        assert obs.failure is FailureKind.PROTOCOL
        assert words in obs.message

    async def test_repeated_equal_lengths_are_fine(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
        assert (await probe_raw(check_for, reply)).outcome is Outcome.UP

    async def test_an_endless_chunk_size_line(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"a" * 100_000
        obs = await probe_raw(check_for, reply)
        assert obs.failure is FailureKind.PROTOCOL
        assert "chunk size line longer than 1024 bytes" in obs.message

    async def test_bytes_after_the_gzip_stream_are_dropped(self, check_for) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n")
            writer.write(gzip.compress(b"Wing"))
            zeros = bytes(64 * 1024)
            try:
                for _ in range(320):  # then 20 MB of zeros, until the server closes
                    writer.write(zeros)
                    await writer.drain()
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tracemalloc.start()
        try:
            async with server:
                check = check_for(f"http://127.0.0.1:{port}/", expect={"body_regex": ["^Wing$"]})
                obs = await check.run()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert obs.outcome is Outcome.UP, obs.message
        assert "body_truncated_at" not in obs.details
        assert peak < 8 * 1024 * 1024  # the 20 MB after the stream were not kept

    @pytest.mark.parametrize("charset", ["rot13", "base64", "idna", "undefined", "zlib"])
    async def test_a_charset_that_is_no_text_codec(self, check_for, charset: str) -> None:
        reply = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset={charset}\r\n"
            "Content-Length: 4\r\n\r\nWing"
        ).encode()
        obs = await probe_raw(
            check_for, reply, expect={"body_contains": ["Wing"]}, record={"regex": "W(i)ng"}
        )
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["recorded"] == "i"

    @pytest.mark.parametrize("host", ["a..b", f"{'x' * 64}.example"])
    async def test_a_redirect_to_a_host_that_cannot_be_encoded(self, check_for, host) -> None:
        reply = f"HTTP/1.1 302 Found\r\nLocation: http://{host}/\r\nContent-Length: 0\r\n\r\n"
        obs = await probe_raw(check_for, reply.encode())
        assert obs.failure is FailureKind.DNS
        assert obs.message == f"could not resolve {host}: not a valid host name"

    async def test_a_redirect_to_something_else(self, check_for) -> None:
        reply = b"HTTP/1.1 302 Found\r\nLocation: http://[::1/\r\nContent-Length: 0\r\n\r\n"
        obs = await probe_raw(check_for, reply)
        assert obs.failure is FailureKind.PROTOCOL
        assert obs.message.startswith("request failed: redirect to 'http://[::1/', not a")

    async def test_slow_name_resolution_times_out_resolving(self, check_for, monkeypatch) -> None:
        loop = asyncio.get_running_loop()
        never = asyncio.Event()

        async def hang(*_args: Any, **_kwargs: Any) -> Any:
            await never.wait()

        monkeypatch.setattr(loop, "getaddrinfo", hang)
        obs = await check_for("http://docs.example.invalid/", timeout="50ms").run()
        assert obs.message.endswith("(timed out resolving the host name)")


def exchange(cap: int = 1 << 20) -> _Exchange:
    return _Exchange(asyncio.get_running_loop(), b"", False, True, cap, PhaseTimer(), "h")


async def fed(pieces: list[bytes], cap: int = 1 << 20) -> tuple[bytes, bool]:
    """The body an exchange reads from `pieces`, each one `data_received` call."""
    ex = exchange(cap)
    for piece in pieces:
        ex.data_received(piece)
    ex.connection_lost(None)
    _head, body, truncated = await ex.done
    return body, truncated


class TestSplitAnywhere:
    """Bytes can arrive cut at any point: every cut gives the same body."""

    @staticmethod
    def cuts(message: bytes) -> list[list[bytes]]:
        return [[message[:i], message[i:]] for i in range(1, len(message))]

    async def test_chunked(self) -> None:
        message = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nWing,\r\n10\r\n cloud-oriented!\r\n0\r\n\r\n"
        )
        for pieces in [[message], *self.cuts(message), [bytes([b]) for b in message]]:
            assert await fed(pieces) == (b"Wing, cloud-oriented!", False), pieces

    @pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
    async def test_deflate_either_framing(self, wbits: int) -> None:
        packer = zlib.compressobj(wbits=wbits)
        body = packer.compress(PAGE.encode()) + packer.flush()
        message = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n" + body
        for pieces in [[message], *self.cuts(message)]:
            assert await fed(pieces) == (PAGE.encode(), False), pieces

    async def test_gzip_with_a_cap(self) -> None:
        message = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(b"W" * 5000)
        for pieces in [[message], *self.cuts(message)]:
            assert await fed(pieces, cap=100) == (b"W" * 100, True), pieces


# --- what llhttp reads, and the policy around it ------------------------------------------
#
# Each case is one response on the wire. It is sent by a real server in one write and
# byte by byte, and handed to the exchange cut at every point: the result is the same.

CRLF_BODY = b"<p>one</p>\r\n\r\n<p>two after a blank line</p>"  # 43 bytes


@dataclass(frozen=True)
class Ok:
    body: bytes
    note: str | None = None  # the X-Note header, when the case is about a header


@dataclass(frozen=True)
class Fails:
    failure: FailureKind
    words: str


def chunked(*head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in head) + b"\r\n"


OK_TE = b"Transfer-Encoding: chunked"
GZIP_WING = gzip.compress(b"Wing")

CASES: dict[str, tuple[bytes, Ok | Fails]] = {
    # no silent misparse: the head ends at its first empty line, whatever ends its lines
    "bare LF head, CRLF CRLF in the body": (
        b"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: 43\n\n" + CRLF_BODY,
        Ok(CRLF_BODY),
    ),
    # no false downs on valid responses
    "obs-fold unfolded": (
        b"HTTP/1.1 200 OK\r\nX-Note: Wing\r\n  cloud\r\n\toriented\r\nContent-Length: 4\r\n\r\nWing",
        Ok(b"Wing", "Wing cloud oriented"),
    ),
    "obs-fold with bare LF": (
        b"HTTP/1.1 200 OK\nX-Note: Wing\n cloud\nContent-Length: 4\n\nWing",
        Ok(b"Wing", "Wing cloud"),
    ),
    "equal Content-Length twice": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Note: a\r\ncontent-length:4\r\n\r\nWing",
        Ok(b"Wing", "a"),
    ),
    "equal Content-Length twice, one a list": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\nContent-Length: 4\r\n\r\nWing",
        Ok(b"Wing"),
    ),
    "a list of equal Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4,4 , 4\r\n\r\nWing",
        Ok(b"Wing"),
    ),
    "a list of different Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\nWing!",
        Fails(FailureKind.PROTOCOL, "conflicting Content-Length headers ['4', '5']"),
    ),
    "BWS before a chunk extension": (
        chunked(OK_TE) + b"4 ;a=1\r\nWing\r\n6\t;b\r\n, yes!\r\n0\r\n\r\n",
        Ok(b"Wing, yes!"),
    ),
    # Transfer-Encoding is a list across its lines; chunked counts only as the final coding
    "TE gzip then chunked on two lines": (
        chunked(b"Transfer-Encoding: gzip", OK_TE)
        + f"{len(GZIP_WING):x}\r\n".encode()
        + GZIP_WING
        + b"\r\n0\r\n\r\n",
        Ok(b"Wing"),
    ),
    "TE chunked, gzip": (
        chunked(b"Transfer-Encoding: chunked, gzip") + b"4\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.PROTOCOL, "chunked is not the final coding"),
    ),
    "TE chunked then gzip on two lines": (
        chunked(OK_TE, b"Transfer-Encoding: gzip") + b"4\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.PROTOCOL, "chunked is not the final coding"),
    ),
    "TE xchunked": (
        chunked(b"Transfer-Encoding: xchunked") + b"4\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.CONTENT, "'xchunked'"),
    ),
    "TE chunked;q=1": (
        chunked(b"Transfer-Encoding: chunked;q=1") + b"4\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.PROTOCOL, "a coding with parameters"),
    ),
    "TE and Content-Length": (
        chunked(OK_TE, b"Content-Length: 4") + b"4\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.PROTOCOL, "Content-Length"),
    ),
    # strict where the grammar is strict
    "different Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nWing!",
        Fails(FailureKind.PROTOCOL, "conflicting Content-Length headers ['4', '5']"),
    ),
    **{
        f"chunk size {size!r}": (
            chunked(OK_TE) + size + b"\r\nWing, cloud!\r\n0\r\n\r\n",
            Fails(FailureKind.PROTOCOL, "chunk size"),
        )
        for size in (b"0x4", b"+4", b"1_0", b"-1", b"4 4", b" 4")
    },
    "NUL in a header value": (
        b"HTTP/1.1 200 OK\r\nX-Note: a\x00b\r\nContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "malformed header line 'X-Note: a\\x00b'"),
    ),
    "bare CR in a header value": (
        b"HTTP/1.1 200 OK\r\nX-Note: a\rb\r\nContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "malformed header line"),
    ),
    "bare CR ending a header line": (
        b"HTTP/1.1 200 OK\r\nX-Note: a\rContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "malformed header line"),
    ),
    "non-token byte in a header name": (
        b"HTTP/1.1 200 OK\r\nX(Note): a\r\nContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "malformed header line"),
    ),
    "whitespace line after the status line": (
        b"HTTP/1.1 200 OK\r\n X-Note: a\r\nContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "malformed header line"),
    ),
    "HTTP/1.1x": (
        b"HTTP/1.1x 200 OK\r\nContent-Length: 4\r\n\r\nWing",
        Fails(FailureKind.PROTOCOL, "not an HTTP/1 status line: 'HTTP/1.1x 200 OK'"),
    ),
    "chunk size line of 1024 bytes": (
        chunked(OK_TE) + b"4;" + b"e" * 1022 + b"\r\nWing\r\n0\r\n\r\n",
        Ok(b"Wing"),
    ),
    "chunk size line of 1025 bytes": (
        chunked(OK_TE) + b"4;" + b"e" * 1023 + b"\r\nWing\r\n0\r\n\r\n",
        Fails(FailureKind.PROTOCOL, "chunk size line longer than 1024 bytes"),
    ),
    "no body after a 204": (b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n", Ok(b"")),
}


async def exchange_result(pieces: list[bytes]) -> Ok | Fails:
    """What an exchange makes of `pieces`, each one `data_received` call, then EOF."""
    ex = exchange()
    for piece in pieces:
        ex.data_received(piece)
    ex.connection_lost(None)
    try:
        head, body, _ = await ex.done
    except probe.ProbeError as exc:
        return Fails(exc.failure, exc.message)
    return Ok(body, head.headers.get("x-note"))


def matches(result: Ok | Fails, expected: Ok | Fails) -> bool:
    if isinstance(expected, Fails):
        return (
            isinstance(result, Fails)
            and result.failure is expected.failure
            and expected.words in result.words
        )
    return (
        result == Ok(expected.body, expected.note)
        if expected.note
        else (isinstance(result, Ok) and result.body == expected.body)
    )


class PieceServer:
    """Writes `pieces` (waiting for each to be sent) after the request head, then
    either hangs up or, with `hold`, keeps the connection open until the client closes."""

    def __init__(self, pieces: list[bytes], *, hold: bool = False) -> None:
        self.pieces, self.hold = pieces, hold
        self.port = 0

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in self.pieces:
                writer.write(piece)
                await writer.drain()
            if self.hold:
                await reader.read()  # until the client hangs up
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def fetch(self, **options: Any) -> Ok | Fails:
        server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            prober = probe.Prober(
                URL(f"http://127.0.0.1:{self.port}/"),
                user_agent="t",
                tls=ssl.create_default_context(),
                record_header="x-note",
                **options,
            )
            try:
                async with asyncio.timeout(5):
                    response = await prober.fetch(PhaseTimer())
            except probe.ProbeError as exc:
                return Fails(exc.failure, exc.message)
        return Ok(response.body, response.header)


class TestParsedByLlhttp:
    @pytest.mark.parametrize("case", list(CASES))
    @pytest.mark.parametrize("split", ["one write", "byte by byte"])
    async def test_on_the_wire(self, case: str, split: str) -> None:
        message, expected = CASES[case]
        pieces = [message] if split == "one write" else [bytes([b]) for b in message]
        result = await PieceServer(pieces).fetch()
        assert matches(result, expected), result

    @pytest.mark.parametrize("case", list(CASES))
    async def test_cut_anywhere(self, case: str) -> None:
        message, expected = CASES[case]
        for pieces in [
            [message],
            *TestSplitAnywhere.cuts(message),
            [bytes([b]) for b in message],
        ]:
            result = await exchange_result(pieces)
            assert matches(result, expected), (pieces, result)

    async def test_bare_lf_with_the_connection_kept_open(self) -> None:
        message = b"HTTP/1.1 200 OK\nContent-Length: 4\n\nWing"
        for pieces in ([message], [bytes([b]) for b in message]):
            assert await PieceServer(pieces, hold=True).fetch() == Ok(b"Wing")

    @pytest.mark.parametrize("extra", [0, 1])
    async def test_head_limit_however_the_bytes_are_split(self, extra: int) -> None:
        start = b"HTTP/1.1 200 OK\r\nX: "
        end = b"\r\nContent-Length: 4\r\n\r\n"
        message = start + b"a" * (probe._MAX_HEAD - len(start) - len(end) + extra) + end + b"Wing"
        expected: Ok | Fails = (
            Fails(FailureKind.PROTOCOL, "longer than 65536 bytes") if extra else Ok(b"Wing")
        )
        for cut in range(1, len(message), 4099):
            assert matches(await exchange_result([message[:cut], message[cut:]]), expected)
        pieces = [message[i : i + 7] for i in range(0, len(message), 7)]
        assert matches(await exchange_result(pieces), expected)
        assert matches(await PieceServer([message]).fetch(), expected)


def encoded(coding: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Encoding: " + coding + b"\r\n\r\n" + body


DEFLATED = zlib.compress(b"Wing, deflated")
BROTLI: Any = vars(probe)["brotli"]  # the module, or None without the optional extra
DECODING: dict[str, tuple[bytes, Ok | Fails]] = {
    # nginx gzip_static serves files made by concatenating gzip members
    "gzip of two members": (
        encoded(b"gzip", gzip.compress(b"Wing, ") + gzip.compress(b"cloud-oriented")),
        Ok(b"Wing, cloud-oriented"),
    ),
    "gzip of two members, then zeros": (
        encoded(b"gzip", gzip.compress(b"Wing, ") + gzip.compress(b"cloud") + bytes(9)),
        Ok(b"Wing, cloud"),
    ),
    "gzip, then bytes that are no member": (
        encoded(b"gzip", GZIP_WING + b"junk" + gzip.compress(b", more")),
        Ok(b"Wing"),
    ),
    "gzip, identity": (encoded(b"gzip, identity", GZIP_WING), Ok(b"Wing")),
    "gzip, gzip": (encoded(b"gzip, gzip", gzip.compress(GZIP_WING)), Ok(b"Wing")),
    "deflate, gzip on two lines": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Encoding: gzip\r\n\r\n"
        + gzip.compress(DEFLATED),
        Ok(b"Wing, deflated"),
    ),
    "zstd": (encoded(b"zstd", b"(\xb5/\xfd"), Fails(FailureKind.CONTENT, "'zstd'")),
    "compress": (encoded(b"compress", b"\x1f\x9d"), Fails(FailureKind.CONTENT, "'compress'")),
    "gzip, x-unknown": (
        encoded(b"gzip, x-unknown", GZIP_WING),
        Fails(FailureKind.CONTENT, "encoded with 'x-unknown', which the monitor cannot decode"),
    ),
}
if BROTLI is not None:
    DECODING["br"] = (encoded(b"br", BROTLI.compress(b"Wing, brotli")), Ok(b"Wing, brotli"))
    DECODING["br, gzip"] = (
        encoded(b"br, gzip", gzip.compress(BROTLI.compress(b"Wing"))),
        Ok(b"Wing"),
    )


class TestDecoding:
    @pytest.mark.parametrize("case", list(DECODING))
    async def test_on_the_wire_and_cut_anywhere(self, case: str) -> None:
        message, expected = DECODING[case]
        for pieces in [[message], *TestSplitAnywhere.cuts(message)]:
            result = await exchange_result(pieces)
            assert matches(result, expected), (pieces, result)
        assert matches(await PieceServer([message]).fetch(), expected)
        bytewise = await PieceServer([bytes([b]) for b in message]).fetch()
        assert matches(bytewise, expected)

    async def test_layers_and_members_with_a_cap(self) -> None:
        members = gzip.compress(b"W" * 3000) + gzip.compress(b"X" * 3000)
        message = encoded(b"gzip, gzip", gzip.compress(members))
        for pieces in [[message], *TestSplitAnywhere.cuts(message)]:
            assert await fed(pieces, cap=4000) == (b"W" * 3000 + b"X" * 1000, True), pieces
            assert await fed(pieces, cap=6000) == (b"W" * 3000 + b"X" * 3000, False), pieces

    async def test_br_without_the_brotli_package(self, monkeypatch) -> None:
        monkeypatch.delitem(probe._DECODERS, "br", raising=False)
        result = await PieceServer([encoded(b"br", b"\x0b\x01\x80Wing\x03")]).fetch()
        assert result == Fails(
            FailureKind.CONTENT,
            "the response body is encoded with 'br', which the monitor cannot decode",
        )

    def test_br_is_asked_for_only_when_it_can_be_decoded(self) -> None:
        request = probe._request_bytes("GET", URL("http://h/"), {}, None).decode()
        accepted = request.split("Accept-Encoding: ")[1].split("\r\n")[0]
        assert accepted == ("gzip, deflate, br" if BROTLI is not None else "gzip, deflate")
        assert ("br" in probe._DECODERS) == (BROTLI is not None)

    async def test_assertions_never_run_on_undecoded_bytes(self, check_for) -> None:
        reply = encoded(b"zstd", b"Wing is here, compressed in no way that matters")
        obs = await probe_raw(check_for, reply, expect={"body_contains": ["Wing"]})
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.CONTENT)
        assert "'zstd'" in obs.message


class TestFinalUrl:
    @staticmethod
    async def serve_redirect(location: Callable[[int], str]) -> tuple[asyncio.Server, int]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET / "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nWing")
            else:
                target = location(port).encode()
                writer.write(b"HTTP/1.1 301 Moved\r\nLocation: " + target + b"\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return server, port

    async def test_a_redirect_to_an_origin_ends_at_its_root(self, check_for) -> None:
        server, port = await self.serve_redirect(lambda port: f"http://127.0.0.1:{port}")
        async with server:
            root = f"http://127.0.0.1:{port}/"
            obs = await check_for(f"{root}old", expect={"final_url": root}).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["final_url"] == root

    async def test_userinfo_in_a_location_is_not_shown(self, check_for) -> None:
        server, port = await self.serve_redirect(
            lambda port: f"http://wing:hunter2@127.0.0.1:{port}/"
        )
        async with server:
            obs = await check_for(f"http://127.0.0.1:{port}/old").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["final_url"] == f"http://127.0.0.1:{port}/"
        assert "hunter2" not in repr(obs.details)
        assert "wing@" not in repr(obs.details)
        assert "wing:" not in repr(obs.details)


class TestAnyBytes:
    """Whatever bytes arrive, however cut, the exchange ends with a response or a
    ProbeError: nothing else escapes it."""

    @staticmethod
    def run(pieces: list[bytes], cap: int = 1 << 20) -> Ok | Fails | None:
        loop = asyncio.new_event_loop()
        try:
            ex = _Exchange(loop, b"", False, True, cap, PhaseTimer(), "h")
            for piece in pieces:
                ex.data_received(piece)
            ex.connection_lost(None)
            assert ex.done.done()
            if ex.done.exception() is not None:
                error = ex.done.exception()
                assert isinstance(error, probe.ProbeError), repr(error)
                return Fails(error.failure, error.message)
            _head, body, _ = ex.done.result()
            return Ok(body)
        finally:
            loop.close()

    @given(
        case=st.sampled_from(sorted(CASES) + sorted(DECODING)),
        edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3)), max_size=4),
        cuts=st.lists(st.integers(1, 10_000), max_size=6),
    )
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_mutated_responses(
        self, case: str, edits: list[tuple[int, bytes]], cuts: list[int]
    ) -> None:
        message = (CASES | DECODING)[case][0]
        for at, insert in edits:
            at %= len(message) + 1
            message = message[:at] + insert + message[at + len(insert) :]
        points = sorted({c % (len(message) + 1) for c in cuts} | {0, len(message)})
        pieces = [message[a:b] for a, b in itertools.pairwise(points)]
        # the same body, or the same kind of failure (zlib may notice corruption by
        # another of its checks when the bytes come in other pieces)
        assert self.outcome(self.run(pieces)) == self.outcome(self.run([message]))

    @staticmethod
    def outcome(result: Ok | Fails | None) -> object:
        return result.failure if isinstance(result, Fails) else result

    @given(st.binary(max_size=300), st.integers(1, 300))
    @settings(max_examples=200, deadline=None)
    def test_noise(self, noise: bytes, cut: int) -> None:
        self.run([b"HTTP/1.1 200 OK\r\n" + noise[:cut], noise[cut:]])
