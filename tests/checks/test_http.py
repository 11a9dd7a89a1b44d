"""The HTTP check against real local servers: every behaviour is provoked on the wire."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from monitor.checks import CheckContext, classify_exception
from monitor.checks.http.check import HttpCheck, HttpCheckConfig, parse_json_path
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Outcome

PAGE = "<html><head><title>Wing Playground</title></head><body>Wing</body></html>"


@pytest.fixture
def check_for(session: aiohttp.ClientSession):
    def build(url: str, **fields: Any) -> HttpCheck:
        fields.setdefault("timeout", "5s")
        config = HttpCheckConfig(name="t", kind="http", url=url, **fields).resolved(Defaults())
        return HttpCheck(config, CheckContext(session=session, clock=SystemClock()))

    return build


async def serve(aiohttp_server, routes: dict[str, Any], **kwargs: Any) -> Any:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    return await aiohttp_server(app, **kwargs)


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


class TestStatusAndBody:
    async def test_ok_with_keyword(self, aiohttp_server, check_for) -> None:
        server = await serve(aiohttp_server, {"/": page})
        obs = await check_for(str(server.make_url("/")), expect={"body_contains": ["Wing"]}).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.failure is None
        assert obs.details["status"] == 200
        assert {"connect", "first_byte"} <= set(obs.phases)

    async def test_phases_sum_over_redirect_hops(self, aiohttp_server, check_for) -> None:
        async def slow_redirect(_r: web.Request) -> web.Response:
            await asyncio.sleep(0.06)
            raise web.HTTPFound("/final")

        async def slow_page(_r: web.Request) -> web.Response:
            await asyncio.sleep(0.06)
            return web.Response(text=PAGE, content_type="text/html")

        server = await serve(aiohttp_server, {"/": slow_redirect, "/final": slow_page})
        obs = await check_for(str(server.make_url("/"))).run()
        assert obs.outcome is Outcome.UP, obs.message
        # Both hops' waits for headers count as time to first byte, each hop connects.
        assert obs.phases["first_byte"] >= 0.12
        assert 0 < obs.phases["connect"] < 0.06
        assert "dns" not in obs.phases  # an IP literal is not resolved

    async def test_name_resolution_is_timed(self, aiohttp_server, check_for) -> None:
        server = await serve(aiohttp_server, {"/": page})
        obs = await check_for(f"http://localhost:{server.port}/").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.phases["dns"] > 0
        assert obs.phases["connect"] > 0

    async def test_server_error(self, aiohttp_server, check_for) -> None:
        async def boom(_r: web.Request) -> web.Response:
            return web.Response(status=500, text="oops")

        server = await serve(aiohttp_server, {"/": boom})
        obs = await check_for(str(server.make_url("/"))).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.HTTP_STATUS)
        assert obs.message == "expected status 2xx, got 500 Internal Server Error"

    async def test_expected_status_list_and_class(self, aiohttp_server, check_for) -> None:
        async def teapot(_r: web.Request) -> web.Response:
            return web.Response(status=418)

        server = await serve(aiohttp_server, {"/": teapot})
        url = str(server.make_url("/"))
        assert (await check_for(url, expect={"status": [200, 418]}).run()).outcome is Outcome.UP
        assert (await check_for(url, expect={"status": ["4xx"]}).run()).outcome is Outcome.UP
        obs = await check_for(url, expect={"status": [200, "3xx"]}).run()
        assert obs.message == "expected status 200 or 3xx, got 418 I'm a Teapot"

    async def test_keyword_missing(self, aiohttp_server, check_for) -> None:
        server = await serve(aiohttp_server, {"/": page})
        obs = await check_for(
            str(server.make_url("/")), expect={"body_contains": ["Wing", "Quick start"]}
        ).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.CONTENT)
        assert (
            obs.message == f"expected body to contain 'Quick start', not found in {len(PAGE)} bytes"
        )

    async def test_forbidden_keyword_and_regex(self, aiohttp_server, check_for) -> None:
        server = await serve(aiohttp_server, {"/": page})
        url = str(server.make_url("/"))
        obs = await check_for(url, expect={"body_not_contains": ["Playground"]}).run()
        assert obs.failure is FailureKind.CONTENT
        assert obs.message == "body contains 'Playground', which must not appear"
        obs = await check_for(url, expect={"body_regex": [r"<title>Wing \w+</title>"]}).run()
        assert obs.outcome is Outcome.UP
        obs = await check_for(url, expect={"body_regex": [r"v\d+\.\d+"]}).run()
        assert obs.message == rf"expected body to match /v\d+\.\d+/, no match in {len(PAGE)} bytes"

    async def test_head_and_post(self, aiohttp_server, check_for) -> None:
        seen: list[tuple[str, bytes, str | None]] = []

        async def echo(request: web.Request) -> web.Response:
            seen.append((request.method, await request.read(), request.headers.get("X-Probe")))
            return web.Response(text="ok")

        server = await serve(aiohttp_server, {"/": echo})
        url = str(server.make_url("/"))
        assert (await check_for(url, method="HEAD").run()).outcome is Outcome.UP
        obs = await check_for(url, method="POST", body='{"q": 1}', headers={"X-Probe": "yes"}).run()
        assert obs.outcome is Outcome.UP
        assert seen == [("HEAD", b"", None), ("POST", b'{"q": 1}', "yes")]


class TestJson:
    @pytest.fixture
    async def url(self, aiohttp_server) -> str:
        doc = {
            "status": {"indicator": "none"},
            "components": [{"name": "API", "up": True}],
            "count": 7,
        }

        async def status(_r: web.Request) -> web.Response:
            return web.json_response(doc)

        server = await serve(aiohttp_server, {"/": status})
        return str(server.make_url("/"))

    @pytest.mark.parametrize(
        ("assertion", "message"),
        [
            ({"path": "status.indicator", "equals": "none"}, None),
            ({"path": "$.components[0].name", "equals": "API"}, None),
            ({"path": "count", "gt": 5, "le": 7}, None),
            ({"path": "missing", "exists": False}, None),
            ({"path": "status.indicator", "equals": "major"},
             "expected status.indicator == 'major', got 'none'"),
            ({"path": "count", "lt": 5}, "expected count < 5, got 7"),
            ({"path": "status", "ge": 1}, "expected status to be a number, got {'indicator': 'none'}"),
            ({"path": "components[3].name", "exists": True},
             "expected components[3].name to exist, it is absent"),
            ({"path": "nope", "equals": 1}, "expected nope in the JSON body, it is absent"),
            ({"path": "count", "not_equals": 7}, "expected count != 7, got 7"),
        ],
    )  # fmt: skip
    async def test_assertions(
        self, url, check_for, assertion: dict[str, Any], message: str | None
    ) -> None:
        obs = await check_for(url, expect={"json": [assertion]}).run()
        if message is None:
            assert obs.outcome is Outcome.UP, obs.message
        else:
            assert (obs.failure, obs.message) == (FailureKind.CONTENT, message)

    async def test_not_json(self, aiohttp_server, check_for) -> None:
        server = await serve(aiohttp_server, {"/": page})
        obs = await check_for(
            str(server.make_url("/")), expect={"json": [{"path": "a", "exists": True}]}
        ).run()
        assert obs.failure is FailureKind.CONTENT
        assert obs.message.startswith("expected a JSON body, could not parse it")

    @pytest.mark.parametrize(
        ("path", "parts"),
        [("a", ("a",)), ("a.b", ("a", "b")), ("$.a[2].b", ("a", 2, "b")), ("[0]", (0,))],
    )
    def test_paths(self, path: str, parts: tuple[str | int, ...]) -> None:
        assert parse_json_path(path) == parts


class TestRedirects:
    @pytest.fixture
    async def server(self, aiohttp_server) -> Any:
        async def hop(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            target = "/final" if n == 0 else f"/hop/{n - 1}"
            raise web.HTTPMovedPermanently(target)

        async def loop(_r: web.Request) -> web.Response:
            raise web.HTTPFound("/loop")

        return await serve(aiohttp_server, {"/hop/{n}": hop, "/final": page, "/loop": loop})

    async def test_chain_is_recorded_and_final_page_asserted(self, server, check_for) -> None:
        final = str(server.make_url("/final"))
        obs = await check_for(
            str(server.make_url("/hop/2")), expect={"final_url": final, "body_contains": ["Wing"]}
        ).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["final_url"] == final
        assert [h["url"].rsplit("/", 2)[-2:] for h in obs.details["redirects"]] == [
            ["hop", "2"], ["hop", "1"], ["hop", "0"],
        ]  # fmt: skip
        assert {h["status"] for h in obs.details["redirects"]} == {301}

    async def test_wrong_destination(self, server, check_for) -> None:
        obs = await check_for(
            str(server.make_url("/hop/0")), expect={"final_url": "https://example.org/"}
        ).run()
        assert obs.failure is FailureKind.CONTENT
        assert obs.message.startswith(
            "expected to end at https://example.org/, ended at http://127.0.0.1:"
        )

    async def test_not_following(self, server, check_for) -> None:
        url = str(server.make_url("/hop/0"))
        obs = await check_for(url, follow_redirects=False).run()
        assert obs.failure is FailureKind.HTTP_STATUS
        assert obs.message == "expected status 2xx, got 301 Moved Permanently → /final"
        assert (
            await check_for(url, follow_redirects=False, expect={"status": [301]}).run()
        ).outcome is Outcome.UP

    async def test_too_many(self, server, check_for) -> None:
        obs = await check_for(str(server.make_url("/loop")), max_redirects=3).run()
        assert obs.failure is FailureKind.REDIRECTS
        assert obs.message == "too many redirects (stopped after 3)"


class TestTimeoutsAndBrokenConnections:
    async def test_no_headers_within_timeout(self, aiohttp_server, check_for) -> None:
        never = asyncio.Event()

        async def hang(_r: web.Request) -> web.Response:
            await never.wait()
            raise AssertionError("unreachable")

        server = await serve(aiohttp_server, {"/": hang})
        obs = await check_for(str(server.make_url("/")), timeout="50ms").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.TIMEOUT)
        assert (
            obs.message
            == "no complete response within 0.05s (timed out waiting for the response headers)"
        )

    async def test_body_stalls(self, aiohttp_server, check_for) -> None:
        never = asyncio.Event()

        async def stall(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(b"Wing partial")
            await never.wait()
            return resp

        server = await serve(aiohttp_server, {"/": stall})
        obs = await check_for(str(server.make_url("/")), timeout="50ms").run()
        assert obs.failure is FailureKind.TIMEOUT
        assert obs.message.endswith("(timed out reading the body)")

    async def test_connection_refused(self, check_for) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, never listening: connections are refused
            obs = await check_for(f"http://127.0.0.1:{port}/").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.CONNECT)
        assert obs.message.startswith(f"could not connect to 127.0.0.1:{port}: ")

    async def test_dns_failure(self, check_for) -> None:
        obs = await check_for("http://no-such-host.invalid/").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.DNS)
        assert obs.message.startswith("could not resolve no-such-host.invalid")

    @staticmethod
    async def probe_raw(check_for, reply: bytes) -> Any:
        """Probes a bare TCP server that answers any request with `reply`, then hangs up."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await check_for(f"http://127.0.0.1:{port}/").run()

    async def test_connection_dropped_mid_body(self, check_for) -> None:
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nWing, and then"
        obs = await self.probe_raw(check_for, reply)
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.DISCONNECTED)

    async def test_garbage_instead_of_http(self, check_for) -> None:
        obs = await self.probe_raw(check_for, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        assert obs.outcome is Outcome.DOWN
        assert obs.failure in {FailureKind.PROTOCOL, FailureKind.DISCONNECTED}

    async def test_huge_body_is_never_buffered(self, aiohttp_server, check_for) -> None:
        sent = 0

        async def endless(request: web.Request) -> web.StreamResponse:
            nonlocal sent
            resp = web.StreamResponse()
            await resp.prepare(request)
            chunk = b"Wing" * 16384  # 64 KiB
            try:
                for _ in range(32768):  # up to 2 GiB, stopped by the client closing
                    await resp.write(chunk)
                    sent += len(chunk)
            except (ConnectionError, RuntimeError):
                pass
            return resp

        server = await serve(aiohttp_server, {"/": endless})
        obs = await check_for(
            str(server.make_url("/")), max_body="256KiB", expect={"body_contains": ["Wing"]}
        ).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["body_truncated_at"] == 256 * 1024
        assert sent < 256 * 1024 * 1024  # the server was cut off long before 2 GiB

    async def test_slow_is_degraded_not_down(self, aiohttp_server, check_for) -> None:
        async def slow(_r: web.Request) -> web.Response:
            await asyncio.sleep(0.05)  # the provocation: a 50 ms response
            return web.Response(text="Wing")

        server = await serve(aiohttp_server, {"/": slow})
        obs = await check_for(str(server.make_url("/")), max_latency="10ms").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.SLOW)
        assert obs.message == "slower than max_latency 0.01s"
        assert obs.details["elapsed_s"] >= 0.05


class TestTls:
    @pytest.fixture
    def ca(self) -> trustme.CA:
        return trustme.CA()

    @pytest.fixture
    def ca_file(self, ca: trustme.CA, tmp_path: Path) -> str:
        path = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(path))
        return str(path)

    async def https(self, aiohttp_server, ca: trustme.CA, **cert: Any) -> Any:
        leaf = ca.issue_cert("127.0.0.1", "localhost", **cert)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        return await serve(aiohttp_server, {"/": page}, ssl=ctx)

    def url(self, server: Any) -> str:
        return f"https://localhost:{server.port}/"

    async def test_trusted_certificate(self, aiohttp_server, ca, ca_file, check_for) -> None:
        not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
        server = await self.https(aiohttp_server, ca, not_after=not_after)
        obs = await check_for(self.url(server), tls_ca_file=ca_file, tls_min_days=14).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["tls_not_after"] == not_after
        assert obs.phases["tls"] > 0
        assert obs.phases["connect"] > 0

    async def test_untrusted_certificate(self, aiohttp_server, ca, check_for) -> None:
        server = await self.https(aiohttp_server, ca)
        obs = await check_for(self.url(server)).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.TLS)
        assert (
            "certificate verify failed" in obs.message
            or "unable to get local issuer" in obs.message
        )

    async def test_verification_off(self, aiohttp_server, ca, check_for) -> None:
        server = await self.https(aiohttp_server, ca)
        assert (await check_for(self.url(server), tls_verify=False).run()).outcome is Outcome.UP

    async def test_expired_certificate(self, aiohttp_server, ca, ca_file, check_for) -> None:
        now = datetime.now(UTC)
        server = await self.https(
            aiohttp_server,
            ca,
            not_before=now - timedelta(days=100),
            not_after=now - timedelta(days=1),
        )
        obs = await check_for(self.url(server), tls_ca_file=ca_file).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.TLS)
        assert "certificate has expired" in obs.message

    async def test_near_expiry_is_degraded(self, aiohttp_server, ca, ca_file, check_for) -> None:
        server = await self.https(
            aiohttp_server, ca, not_after=datetime.now(UTC) + timedelta(days=5, hours=1)
        )
        obs = await check_for(self.url(server), tls_ca_file=ca_file, tls_min_days=14).run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.TLS_EXPIRING)
        assert obs.message.startswith("TLS certificate expires 20")
        assert obs.message.endswith("Z, under tls_min_days 14")
        assert obs.details["tls_days_left"] == 5

    async def test_wrong_host_name(self, aiohttp_server, ca, ca_file, check_for) -> None:
        leaf = ca.issue_cert("other.example")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        server = await serve(aiohttp_server, {"/": page}, ssl=ctx)
        obs = await check_for(self.url(server), tls_ca_file=ca_file).run()
        assert obs.failure is FailureKind.TLS
        assert "localhost" in obs.message


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), FailureKind.TIMEOUT),
        (aiohttp.ServerDisconnectedError(), FailureKind.DISCONNECTED),
        (aiohttp.ClientPayloadError("cut"), FailureKind.DISCONNECTED),
        (ConnectionResetError("reset"), FailureKind.DISCONNECTED),
        (ssl.SSLError(1, "bad"), FailureKind.TLS),
        (aiohttp.InvalidURL("x"), FailureKind.PROTOCOL),
        (OSError(113, "No route to host"), FailureKind.CONNECT),
        (RuntimeError("?"), FailureKind.UNEXPECTED),
    ],
)
def test_classify_exception(exc: BaseException, kind: FailureKind) -> None:
    assert classify_exception(exc)[0] is kind


def test_results_are_json_ready() -> None:
    from monitor.core.model import CheckResult

    result = CheckResult(
        "t", "http", Outcome.UP, None, "ok", datetime(2026, 1, 1, tzinfo=UTC), 0.5,
        details={"tls_not_after": datetime(2027, 1, 1, tzinfo=UTC), "redirects": [(301, "u")]},
    )  # fmt: skip
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["details"]["tls_not_after"] == "2027-01-01T00:00:00+00:00"
    assert doc["ok"] is True


class TestRecord:
    """`record:` keeps a value (a deployed version) from good responses."""

    @pytest.fixture
    async def url(self, aiohttp_server) -> str:
        async def version(_r: web.Request) -> web.Response:
            body = {"build": {"version": "0.85.48"}, "html": "<b>winglang@0.85.48</b>"}
            return web.json_response(body, headers={"X-Wing-Version": "0.85.48"})

        server = await serve(aiohttp_server, {"/": version})
        return str(server.make_url("/"))

    @pytest.mark.parametrize(
        ("record", "source"),
        [({"header": "x-wing-version"}, "header x-wing-version"),
         ({"json": "build.version"}, "JSON build.version"),
         ({"regex": r"winglang@([0-9.]+)"}, "body /winglang@([0-9.]+)/")],
    )  # fmt: skip
    async def test_recorded_from_a_good_response(self, url, check_for, record, source) -> None:
        obs = await check_for(url, record=record).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["recorded"] == "0.85.48"
        assert obs.details["recorded_from"] == source

    async def test_absent_value_or_failed_response_records_nothing(self, url, check_for) -> None:
        obs = await check_for(url, record={"json": "build.missing"}).run()
        assert obs.outcome is Outcome.UP
        assert "recorded" not in obs.details
        obs = await check_for(
            url, record={"header": "X-Wing-Version"}, expect={"status": [204]}
        ).run()
        assert obs.outcome is Outcome.DOWN
        assert "recorded" not in obs.details

    @pytest.mark.parametrize(
        "record", [{}, {"header": "X", "json": "a"}, {"regex": "("}, {"json": "a..b["}]
    )
    def test_needs_exactly_one_valid_source(self, record) -> None:
        with pytest.raises(ValueError, match=r"exactly one|regular expression|JSON path"):
            HttpCheckConfig(name="t", kind="http", url="http://x", record=record)
