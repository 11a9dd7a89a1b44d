"""`kind: vscode_marketplace` and `kind: openvsx` against local galleries speaking the real formats."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.checks import CheckContext
from monitor.checks.marketplace import (
    QUERY_FLAGS,
    ExtensionRelease,
    OpenVsxCheck,
    OpenVsxCheckConfig,
    VscodeMarketplaceCheck,
    VscodeMarketplaceCheckConfig,
    extension_query,
    judge_release,
    parse_extension_query,
    parse_openvsx,
)
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Observation, Outcome
from tests.fakes import FakeClock
from tests.fuzz import ANY_JSON, mutate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "marketplace"
GALLERY_PATH = "/_apis/public/gallery"
WING = "Monada.vscode-wing"
NOW = datetime(2026, 11, 22, tzinfo=UTC)  # 662 days after the fixture's 2025-01-28T12:30Z
HTML = b"<html><head><title>Service Unavailable</title></head><body>Oops</body></html>"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


FOUND = load("extensionquery-response-monada-vscode-wing-reconstructed.json")
NOT_FOUND = load("extensionquery-response-not-found-reconstructed.json")
OPENVSX = load("openvsx-extension-schema-example-reconstructed.json")
OPENVSX_404 = load("openvsx-extension-not-found.json")


def wing_extension() -> dict[str, Any]:
    return copy.deepcopy(FOUND["results"][0]["extensions"][0])


class Forced:
    """A canned answer that replaces the fake's normal one."""

    def __init__(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers

    def response(self) -> web.Response:
        return web.Response(
            status=self.status, body=self.body, content_type=self.ctype, headers=self.headers
        )


def forced_json(doc: Any, status: int = 200, **headers: str) -> Forced:
    return Forced(status, json.dumps(doc).encode(), "application/json", **headers)


class FakeGallery:
    """`POST …/extensionquery`: answers a filterType 7 (name) criterion from `extensions`,
    in the response format of the captured fixture; unknown names get the not-found answer."""

    def __init__(self) -> None:
        self.extensions: dict[str, dict[str, Any]] = {WING.lower(): wing_extension()}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.forced: Forced | None = None
        self.hang = False
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = await request.json() if request.can_read_body else {}
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if self.hang:
            await asyncio.Event().wait()
        if self.forced is not None:
            return self.forced.response()
        if request.method != "POST" or request.path != f"{GALLERY_PATH}/extensionquery":
            return web.Response(status=404, text="no such route")
        names = [c["value"] for c in body["filters"][0]["criteria"] if c["filterType"] == 7]
        ext = self.extensions.get(names[0].lower()) if names else None
        if ext is None:
            return web.json_response(NOT_FOUND)
        doc = copy.deepcopy(FOUND)
        doc["results"][0]["extensions"] = [ext]
        return web.json_response(doc)


class FakeOpenVsx:
    """`GET /api/{namespace}/{name}`: the `ExtensionJson` of a known extension, else the
    server's 404 body."""

    def __init__(self) -> None:
        self.extensions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.forced: Forced | None = None
        self.hang = False
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/{namespace}/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.headers)))
        if self.hang:
            await asyncio.Event().wait()
        if self.forced is not None:
            return self.forced.response()
        ident = f"{request.match_info['namespace']}.{request.match_info['name']}"
        doc = self.extensions.get(ident.lower())
        if doc is None:
            return web.json_response({"error": f"Extension not found: {ident}"}, status=404)
        return web.json_response(doc)


@pytest.fixture
async def gallery(aiohttp_server) -> FakeGallery:
    fake = FakeGallery()
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url(GALLERY_PATH))
    return fake


@pytest.fixture
async def openvsx(aiohttp_server) -> FakeOpenVsx:
    fake = FakeOpenVsx()
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def ctx(session) -> CheckContext:
    return CheckContext(session=session, clock=FakeClock(NOW))


@pytest.fixture
def marketplace_check(gallery, ctx):
    def build(extension: str = WING, **fields: Any) -> VscodeMarketplaceCheck:
        fields.setdefault("gallery_url", gallery.base)
        fields.setdefault("timeout", "5s")
        config = VscodeMarketplaceCheckConfig(
            name="t", kind="vscode_marketplace", extension=extension, **fields
        ).resolved(Defaults())
        return VscodeMarketplaceCheck(config, ctx)

    return build


@pytest.fixture
def openvsx_check(openvsx, ctx):
    def build(extension: str = WING, **fields: Any) -> OpenVsxCheck:
        fields.setdefault("api_url", openvsx.base)
        fields.setdefault("timeout", "5s")
        config = OpenVsxCheckConfig(
            name="t", kind="openvsx", extension=extension, **fields
        ).resolved(Defaults())
        return OpenVsxCheck(config, ctx)

    return build


class TestMarketplaceFound:
    async def test_reports_version_date_and_installs(self, gallery, marketplace_check) -> None:
        obs = await marketplace_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.UP, None), obs.message
        assert obs.message == (
            "Monada.vscode-wing 0.85.48 on the marketplace, updated 2025-01-28, 12,345 installs"
        )
        origin = gallery.base.removesuffix(GALLERY_PATH)
        assert obs.details == {
            "extension": WING,
            "version": "0.85.48",
            "updated_at": datetime(2025, 1, 28, 12, 30, tzinfo=UTC),
            "installs": 12345,
            "url": f"{origin}/items?itemName=Monada.vscode-wing",
        }
        assert isinstance(obs.details["installs"], int)

    async def test_request_body_and_headers(self, gallery, marketplace_check) -> None:
        await marketplace_check().run()
        [(method, path, headers, body)] = gallery.requests
        assert (method, path) == ("POST", "/_apis/public/gallery/extensionquery")
        assert headers["Accept"] == "application/json;api-version=3.0-preview.1"
        assert headers["Content-Type"] == "application/json"
        assert body["flags"] == 773 == QUERY_FLAGS
        criteria = body["filters"][0]["criteria"]
        assert {"filterType": 7, "value": "Monada.vscode-wing"} in criteria
        assert {"filterType": 8, "value": "Microsoft.VisualStudio.Code"} in criteria
        assert all(c["filterType"] != 12 for c in criteria)  # unpublished must come back
        assert body["filters"][0]["pageSize"] == 1
        assert body["assetTypes"] == []

    def test_query_differs_from_vscode_only_where_meant(self) -> None:
        vscode = load("extensionquery-request-monada-vscode-wing.json")
        ours = extension_query(WING)
        key = lambda c: (c["filterType"], c["value"])  # noqa: E731
        theirs = sorted(map(key, vscode["filters"][0]["criteria"]))
        assert sorted(map(key, ours["filters"][0]["criteria"])) == [k for k in theirs if k[0] != 12]
        assert {k: v for k, v in ours["filters"][0].items() if k != "criteria"} == {
            k: v for k, v in vscode["filters"][0].items() if k != "criteria"
        }
        # 919 also asks for files, version properties and asset URIs; we read none of them.
        assert vscode["flags"] & ours["flags"] == ours["flags"]

    async def test_id_matches_in_any_case(self, marketplace_check) -> None:
        obs = await marketplace_check("monada.VSCODE-Wing").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.details["extension"] == WING  # as the gallery spells it

    async def test_extension_date_when_version_has_none(self, gallery, marketplace_check) -> None:
        ext = gallery.extensions[WING.lower()]
        del ext["versions"][0]["lastUpdated"]
        ext["lastUpdated"] = "2025-02-03T17:02:49Z"
        obs = await marketplace_check().run()
        assert obs.details["updated_at"] == datetime(2025, 2, 3, 17, 2, 49, tzinfo=UTC)

    async def test_no_install_statistic(self, gallery, marketplace_check) -> None:
        ext = gallery.extensions[WING.lower()]
        ext["statistics"] = [s for s in ext["statistics"] if s["statisticName"] != "install"]
        obs = await marketplace_check().run()
        assert obs.outcome is Outcome.UP
        assert obs.message == "Monada.vscode-wing 0.85.48 on the marketplace, updated 2025-01-28"
        assert "installs" not in obs.details

    async def test_fresh_enough(self, marketplace_check) -> None:
        assert (await marketplace_check(max_age="700d").run()).outcome is Outcome.UP

    def test_target_is_the_gallery_host(self, session) -> None:
        config = VscodeMarketplaceCheckConfig(
            name="t", kind="vscode_marketplace", extension=WING
        ).resolved(Defaults())
        check = VscodeMarketplaceCheck(config, CheckContext(session=session, clock=FakeClock()))
        assert check.target == "marketplace.visualstudio.com"

    @pytest.mark.parametrize("extension", ["vscode-wing", "Monada.", ".x", "a.b.c", "Mo nada.x"])
    def test_extension_id_is_validated(self, extension: str) -> None:
        with pytest.raises(ValidationError, match="extension"):
            VscodeMarketplaceCheckConfig(name="t", kind="vscode_marketplace", extension=extension)


class TestMarketplaceFailures:
    async def test_not_found(self, marketplace_check) -> None:
        obs = await marketplace_check("Monada.vscode-nope").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.NOT_FOUND)
        assert obs.message == "Monada.vscode-nope not found on the marketplace"

    async def test_other_extension_answered(self, gallery, marketplace_check) -> None:
        gallery.extensions["monada.wing"] = wing_extension()  # a loose match
        obs = await marketplace_check("Monada.wing").run()
        assert obs.failure is FailureKind.NOT_FOUND
        assert obs.message == (
            "Monada.wing not found on the marketplace (it answered with Monada.vscode-wing)"
        )

    async def test_unpublished(self, gallery, marketplace_check) -> None:
        gallery.extensions[WING.lower()]["flags"] = "validated, public, preview, unpublished"
        obs = await marketplace_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNPUBLISHED)
        assert obs.message == (
            "Monada.vscode-wing is unpublished on the marketplace "
            "(flags: validated, public, preview, unpublished)"
        )
        assert obs.details["url"].endswith("/items?itemName=Monada.vscode-wing")

    async def test_stale(self, marketplace_check) -> None:
        obs = await marketplace_check(max_age="30d").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.STALE)
        assert obs.message == (
            "Monada.vscode-wing 0.85.48 on the marketplace was updated 2025-01-28 12:30Z, "
            "over max_age 30d"
        )
        assert obs.details["age_s"] // 86_400 == 662
        assert obs.details["version"] == "0.85.48"

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_server_error(self, gallery, marketplace_check, status: int) -> None:
        gallery.forced = Forced(status, b"upstream trouble", "text/plain")
        obs = await marketplace_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message.startswith(f"marketplace unavailable: {status} ")

    async def test_rate_limited(self, gallery, marketplace_check) -> None:
        gallery.forced = forced_json({"message": "slow down"}, 429, **{"Retry-After": "30"})
        obs = await marketplace_check().run()
        assert obs.failure is FailureKind.RATE_LIMITED
        assert (
            obs.message == "marketplace rate limit reached (429 Too Many Requests); retry after 30s"
        )
        assert obs.details["retry_after_s"] == 30

    async def test_html_error_page(self, gallery, marketplace_check) -> None:
        gallery.forced = Forced(200, HTML, "text/html")
        obs = await marketplace_check().run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "marketplace answered 200 with text/html instead of JSON",
        )

    async def test_truncated_json(self, gallery, marketplace_check) -> None:
        gallery.forced = Forced(200, json.dumps(FOUND).encode()[:300], "application/json")
        obs = await marketplace_check().run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message.startswith("marketplace answered 200 with malformed JSON")

    async def test_error_body_on_400(self, gallery, marketplace_check) -> None:
        gallery.forced = forced_json(
            {"$id": "1", "innerException": None, "message": "Query filters are invalid.",
             "typeKey": "InvalidExtensionQueryException", "errorCode": 0, "eventId": 3000},
            400,
        )  # fmt: skip
        obs = await marketplace_check().run()
        assert obs.failure is FailureKind.PROTOCOL
        assert obs.message == (
            "marketplace refused the query (400): Query filters are invalid. "
            "(InvalidExtensionQueryException)"
        )

    async def test_error_body_on_200(self, gallery, marketplace_check) -> None:
        gallery.forced = forced_json({"errorCode": 0, "message": "Service is in read-only mode"})
        obs = await marketplace_check().run()
        assert (obs.failure, obs.message) == (
            FailureKind.PROTOCOL,
            "marketplace error: Service is in read-only mode",
        )

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda e: e.update(versions="0.85.48"),
             "marketplace answer for Monada.vscode-wing has no versions[0].version string"),
            (lambda e: e.update(versions=[]),
             "marketplace answer for Monada.vscode-wing has no versions[0].version string"),
            (lambda e: e["versions"][0].update(version=85),
             "marketplace answer for Monada.vscode-wing has no versions[0].version string"),
            (lambda e: e.update(flags=["validated"]),
             "marketplace answer for Monada.vscode-wing has no flags string"),
            (lambda e: e["versions"][0].update(lastUpdated=1738065600),
             "marketplace answer for Monada.vscode-wing has no lastUpdated date (got 1738065600)"),
            (lambda e: e["versions"][0].update(lastUpdated="last tuesday"),
             "marketplace answer for Monada.vscode-wing has no lastUpdated date (got 'last tuesday')"),
            (lambda e: e["statistics"][0].update(value="many"),
             "marketplace answer for Monada.vscode-wing: install statistic is not a count ('many')"),
            (lambda e: e.update(statistics=None),
             "marketplace answer for Monada.vscode-wing has no statistics list"),
            (lambda e: e.update(publisher="Monada"),
             "marketplace extension has no publisher.publisherName or extensionName"),
        ],
    )  # fmt: skip
    async def test_wrong_typed_fields(self, gallery, marketplace_check, mutate, message) -> None:
        mutate(gallery.extensions[WING.lower()])
        obs = await marketplace_check().run()
        assert (obs.outcome, obs.failure, obs.message) == (
            Outcome.DOWN,
            FailureKind.SCHEMA,
            message,
        )

    async def test_results_not_a_list(self, gallery, marketplace_check) -> None:
        gallery.forced = forced_json({"results": {"extensions": []}})
        obs = await marketplace_check().run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "marketplace answer has no results[0].extensions list",
        )

    async def test_timeout(self, gallery, marketplace_check) -> None:
        gallery.hang = True
        obs = await marketplace_check(timeout="50ms").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message == "marketplace did not answer within 0.05s"

    async def test_connection_refused(self, marketplace_check) -> None:
        obs = await marketplace_check(gallery_url="http://127.0.0.1:9/gallery").run()
        assert obs.failure is FailureKind.UNAVAILABLE
        assert obs.details["cause"] == "connect"


class TestOpenVsx:
    @pytest.fixture(autouse=True)
    def published(self, openvsx) -> dict[str, Any]:
        doc: dict[str, Any] = copy.deepcopy(OPENVSX)
        openvsx.extensions[WING.lower()] = doc
        return doc

    async def test_found(self, openvsx, openvsx_check) -> None:
        obs = await openvsx_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.UP, None), obs.message
        assert (
            obs.message == "Monada.vscode-wing 0.85.48 on Open VSX, updated 2025-01-28, 0 installs"
        )
        assert obs.details == {
            "extension": WING,
            "version": "0.85.48",
            "updated_at": datetime(2025, 1, 28, 12, 30, tzinfo=UTC),
            "installs": 0,
            "url": f"{openvsx.base}/extension/Monada/vscode-wing",
            "download": OPENVSX["files"]["download"],
        }
        [(method, path, headers)] = openvsx.requests
        assert (method, path, headers["Accept"]) == (
            "GET",
            "/api/Monada/vscode-wing",
            "application/json",
        )

    async def test_not_published(self, openvsx, openvsx_check) -> None:
        openvsx.extensions.clear()  # Wing's real state: never published to Open VSX
        obs = await openvsx_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.NOT_FOUND)
        assert obs.message == "Monada.vscode-wing is not published on Open VSX (404)"

    async def test_not_published_fixture_body(self, openvsx, openvsx_check) -> None:
        openvsx.forced = forced_json(OPENVSX_404, 404)
        obs = await openvsx_check().run()
        assert obs.message == "Monada.vscode-wing is not published on Open VSX (404)"

    async def test_other_404_is_named(self, openvsx, openvsx_check) -> None:
        openvsx.forced = forced_json({"error": "Namespace not found: Monada"}, 404)
        obs = await openvsx_check().run()
        assert obs.failure is FailureKind.NOT_FOUND
        assert obs.message.endswith("(404): Namespace not found: Monada")

    async def test_html_404_is_not_not_found(self, openvsx, openvsx_check) -> None:
        openvsx.forced = Forced(404, HTML, "text/html")  # a wrong api_url behind a proxy
        obs = await openvsx_check().run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "Open VSX answered 404 with text/html instead of JSON",
        )

    async def test_deprecated(self, published, openvsx_check) -> None:
        published["deprecated"] = True
        published["replacement"] = {"url": "https://open-vsx.org/extension/x/y", "displayName": "Y"}
        obs = await openvsx_check().run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.DEPRECATED)
        assert obs.message == "Monada.vscode-wing 0.85.48 on Open VSX is deprecated (use Y instead)"
        published.pop("replacement")
        obs = await openvsx_check().run()
        assert obs.message.endswith("is deprecated (no replacement named)")

    async def test_stale(self, openvsx_check) -> None:
        obs = await openvsx_check(max_age="4w").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.STALE)
        assert obs.message == (
            "Monada.vscode-wing 0.85.48 on Open VSX was updated 2025-01-28 12:30Z, over max_age 28d"
        )

    async def test_download_count_omitted(self, published, openvsx_check) -> None:
        del published["downloadCount"]  # the server drops null fields
        obs = await openvsx_check().run()
        assert obs.outcome is Outcome.UP
        assert "installs" not in obs.details

    @pytest.mark.parametrize("status", [500, 503])
    async def test_server_error(self, openvsx, openvsx_check, status: int) -> None:
        openvsx.forced = forced_json({"error": "boom"}, status)
        obs = await openvsx_check().run()
        assert obs.failure is FailureKind.UNAVAILABLE
        assert obs.message.startswith(f"Open VSX unavailable: {status} ")

    async def test_rate_limited(self, openvsx, openvsx_check) -> None:
        openvsx.forced = forced_json({}, 429, **{"Retry-After": "12"})
        obs = await openvsx_check().run()
        assert (obs.failure, obs.details["retry_after_s"]) == (FailureKind.RATE_LIMITED, 12)
        assert obs.message == "Open VSX rate limit reached (429 Too Many Requests); retry after 12s"

    async def test_truncated_json(self, openvsx, openvsx_check) -> None:
        openvsx.forced = Forced(200, json.dumps(OPENVSX).encode()[:100], "application/json")
        obs = await openvsx_check().run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message.startswith("Open VSX answered 200 with malformed JSON")

    async def test_error_in_200_body(self, openvsx, openvsx_check) -> None:
        openvsx.forced = forced_json({"error": "Extension metadata is being updated"})
        obs = await openvsx_check().run()
        assert (obs.failure, obs.message) == (
            FailureKind.PROTOCOL,
            "Open VSX error: Extension metadata is being updated",
        )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("timestamp", 1738065600, "Open VSX answer for Monada.vscode-wing has no timestamp date (got 1738065600)"),
            ("version", None, "Open VSX answer for Monada.vscode-wing has no version string"),
            ("downloadCount", "12", "Open VSX answer for Monada.vscode-wing: downloadCount is not a count ('12')"),
            ("deprecated", "no", "Open VSX answer for Monada.vscode-wing: deprecated is not a boolean ('no')"),
            ("namespace", ["Monada"], "Open VSX answer has no namespace or name string"),
        ],
    )  # fmt: skip
    async def test_wrong_typed_fields(
        self, published, openvsx_check, field, value, message
    ) -> None:
        published[field] = value
        obs = await openvsx_check().run()
        assert (obs.outcome, obs.failure, obs.message) == (
            Outcome.DOWN,
            FailureKind.SCHEMA,
            message,
        )

    async def test_timeout(self, openvsx, openvsx_check) -> None:
        openvsx.hang = True
        obs = await openvsx_check(timeout="50ms").run()
        assert (obs.failure, obs.message) == (
            FailureKind.UNAVAILABLE,
            "Open VSX did not answer within 0.05s",
        )

    def test_target(self, openvsx_check) -> None:
        assert openvsx_check().target == "127.0.0.1"


# --- Parsers never raise -------------------------------------------------------------------


def assert_release_or_known(result: Any, kinds: set[FailureKind]) -> None:
    if isinstance(result, Observation):
        assert result.outcome is Outcome.DOWN
        assert result.failure in kinds, result
        assert result.message
        return
    assert isinstance(result, ExtensionRelease)
    assert type(result.version) is str  # runtime types, not just what the dataclass says
    assert result.version
    assert type(result.updated_at) is datetime
    assert result.updated_at.tzinfo is not None
    assert result.installs is None or result.installs >= 0
    judged = judge_release(result, "here", timedelta(days=30), NOW, {})
    assert judged.failure in {None, FailureKind.STALE, FailureKind.DEPRECATED}


MARKETPLACE_KINDS = {
    FailureKind.SCHEMA, FailureKind.NOT_FOUND, FailureKind.UNPUBLISHED, FailureKind.PROTOCOL,
}  # fmt: skip
OPENVSX_KINDS = {FailureKind.SCHEMA, FailureKind.NOT_FOUND, FailureKind.PROTOCOL}


class TestParsersNeverRaise:
    def test_fixtures_parse(self) -> None:
        release = parse_extension_query(FOUND, WING)
        assert release == ExtensionRelease(
            WING, "0.85.48", datetime(2025, 1, 28, 12, 30, tzinfo=UTC), 12345
        )
        assert parse_openvsx(OPENVSX, WING) == ExtensionRelease(
            WING, "0.85.48", datetime(2025, 1, 28, 12, 30, tzinfo=UTC), 0
        )
        missing = parse_extension_query(NOT_FOUND, WING)
        assert isinstance(missing, Observation)
        assert missing.failure is FailureKind.NOT_FOUND

    @given(doc=ANY_JSON)
    def test_arbitrary_json_marketplace(self, doc: Any) -> None:
        assert_release_or_known(parse_extension_query(doc, WING), MARKETPLACE_KINDS)

    @given(doc=ANY_JSON)
    def test_arbitrary_json_openvsx(self, doc: Any) -> None:
        assert_release_or_known(parse_openvsx(doc, WING), OPENVSX_KINDS)

    @given(extensions=st.lists(ANY_JSON, min_size=1, max_size=2))
    def test_arbitrary_extension_objects(self, extensions: list[Any]) -> None:
        doc = {"results": [{"extensions": extensions}]}
        assert_release_or_known(parse_extension_query(doc, WING), MARKETPLACE_KINDS)

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_mutated_marketplace_fixture(self, data: st.DataObject) -> None:
        doc = mutate(data, copy.deepcopy(FOUND))
        assert_release_or_known(parse_extension_query(doc, WING), MARKETPLACE_KINDS)

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_mutated_openvsx_fixture(self, data: st.DataObject) -> None:
        doc = mutate(data, copy.deepcopy(OPENVSX))
        assert_release_or_known(parse_openvsx(doc, WING), OPENVSX_KINDS)
