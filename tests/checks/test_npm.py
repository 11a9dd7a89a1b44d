"""`kind: npm` against a local registry that serves the captured Wing documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.checks import CheckContext
from monitor.checks.npm import NpmCheck, NpmCheckConfig, NpmVersion, packument_url, resolve_tag
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Observation, Outcome
from tests.fakes import FakeClock
from tests.fuzz import ANY_JSON, mutate
from tests.npmfake import FakeRegistry, integrity_of, load_doc

TARBALL = b"\x1f\x8b fake winglang tarball " * 100


@pytest.fixture
async def registry(aiohttp_server) -> FakeRegistry:
    fake = FakeRegistry()
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    fake.docs["winglang"] = load_doc("winglang-packument-captured.json", fake.base)
    fake.docs["@winglang/sdk"] = load_doc("winglang-sdk-packument-captured-trimmed.json", fake.base)
    fake.tarballs["/winglang/-/winglang-0.85.49.tgz"] = TARBALL
    fake.tarballs["/@winglang/sdk/-/sdk-0.85.49.tgz"] = TARBALL
    return fake


@pytest.fixture
def npm_check(session, registry):
    clock = FakeClock(datetime(2026, 11, 22, tzinfo=UTC))

    def build(package: str = "winglang", **fields: Any) -> NpmCheck:
        fields.setdefault("registry", registry.base)
        config = NpmCheckConfig(name="t", kind="npm", package=package, **fields).resolved(
            Defaults()
        )
        return NpmCheck(config, CheckContext(session=session, clock=clock))

    return build


class TestResolves:
    async def test_latest_resolves_and_tarball_downloads(self, registry, npm_check) -> None:
        obs = await npm_check().run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == "winglang@latest → 0.85.49, tarball ok"
        assert obs.details["version"] == "0.85.49"
        methods = [(m, p) for m, p, _ in registry.requests]
        assert methods == [("GET", "/winglang"), ("HEAD", "/winglang/-/winglang-0.85.49.tgz")]
        accept = registry.requests[0][2]["Accept"]
        assert accept.startswith("application/vnd.npm.install-v1+json")  # abbreviated first

    async def test_scoped_name_is_encoded(self, registry, npm_check) -> None:
        obs = await npm_check("@winglang/sdk").run()
        assert obs.outcome is Outcome.UP, obs.message
        assert registry.requests[0][1].lower() == "/@winglang%2fsdk"
        # the tarball URL is taken from dist.tarball, with its literal slash
        assert registry.requests[1][1] == "/@winglang/sdk/-/sdk-0.85.49.tgz"

    async def test_abbreviated_document(self, registry, npm_check) -> None:
        registry.abbreviated["winglang"] = load_doc(
            "winglang-abbreviated-upstream-format-reconstructed.json", registry.base
        )
        obs = await npm_check().run()
        assert obs.outcome is Outcome.UP, obs.message
        assert "updated_at" not in obs.details  # the abbreviated form carries no time

    async def test_other_tag(self, registry, npm_check) -> None:
        registry.docs["winglang"]["dist-tags"]["next"] = "0.85.49"
        assert (await npm_check(tag="next").run()).outcome is Outcome.UP

    def test_url(self) -> None:
        assert str(packument_url("https://r.example/", "@a/b")) == "https://r.example/@a%2Fb"
        assert (
            str(packument_url("https://r.example/npm", "left-pad"))
            == "https://r.example/npm/left-pad"
        )


class TestCannotInstall:
    async def test_package_missing(self, npm_check) -> None:
        obs = await npm_check("winglang-nope").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.NOT_FOUND)
        assert obs.message == "winglang-nope not found on the registry (404)"

    async def test_tag_missing(self, npm_check) -> None:
        obs = await npm_check(tag="beta").run()
        assert obs.failure is FailureKind.TAG_MISSING
        assert obs.message == "winglang: dist-tag 'beta' is missing (tags: latest)"

    async def test_tag_points_at_absent_version(self, registry, npm_check) -> None:
        registry.docs["winglang"]["dist-tags"]["latest"] = "0.86.0"
        obs = await npm_check().run()
        assert obs.failure is FailureKind.TAG_MISSING
        assert (
            obs.message == "winglang: dist-tags.latest points at 0.86.0, which is not in versions"
        )

    @pytest.mark.parametrize("status", [404, 500, 503])
    async def test_tarball_fails(self, registry, npm_check, status: int) -> None:
        path = "/winglang/-/winglang-0.85.49.tgz"
        registry.status[path] = status
        obs = await npm_check().run()
        assert obs.failure is FailureKind.TARBALL
        assert f"tarball {'HEAD' if status == 404 else 'GET'} answered {status}" in obs.message

    async def test_head_refused_falls_back_to_ranged_get(self, registry, npm_check) -> None:
        registry.status["HEAD /winglang/-/winglang-0.85.49.tgz"] = 405
        obs = await npm_check().run()
        assert obs.outcome is Outcome.UP, obs.message
        last = registry.requests[-1]
        assert (last[0], last[2].get("Range")) == ("GET", "bytes=0-0")

    async def test_integrity_verified(self, registry, npm_check) -> None:
        registry.docs["winglang"]["versions"]["0.85.49"]["dist"]["integrity"] = integrity_of(
            TARBALL
        )
        obs = await npm_check(verify_integrity=True).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message.endswith("tarball verified")

    async def test_integrity_mismatch(self, npm_check) -> None:
        # The captured document's integrity is the real tarball's; the fake serves other bytes.
        obs = await npm_check(verify_integrity=True).run()
        assert obs.failure is FailureKind.INTEGRITY
        assert obs.message.startswith("winglang@0.85.49: tarball sha512 is ")
        assert "expected etw6jswPHF+NDSH3" in obs.message

    async def test_shasum_when_no_integrity(self, registry, npm_check) -> None:
        dist = registry.docs["winglang"]["versions"]["0.85.49"]["dist"]
        del dist["integrity"]
        dist["shasum"] = __import__("hashlib").sha1(TARBALL).hexdigest()
        assert (await npm_check(verify_integrity=True).run()).outcome is Outcome.UP


class TestNotInstallFailures:
    async def test_deprecated(self, registry, npm_check) -> None:
        registry.docs["winglang"]["versions"]["0.85.49"]["deprecated"] = (
            "Wing is no longer maintained"
        )
        obs = await npm_check().run()
        assert obs.failure is FailureKind.DEPRECATED
        assert (
            obs.message == "winglang@latest → 0.85.49 is deprecated: Wing is no longer maintained"
        )

    async def test_stale_uses_the_full_document(self, registry, npm_check) -> None:
        obs = await npm_check(max_age="30d").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.STALE)
        # published 2026-02-03T00:59 (+00:00 with microseconds), now 2026-11-22
        assert (
            obs.message
            == "winglang@latest → 0.85.49 was published 2026-02-03 00:59Z, over max_age 30d"
        )
        assert obs.details["age_s"] // 86_400 == 291
        assert registry.requests[0][2]["Accept"] == "application/json"
        assert obs.details["updated_at"] == datetime(2026, 2, 3, 0, 59, 0, 66000, tzinfo=UTC)

    async def test_fresh_enough(self, npm_check) -> None:
        assert (await npm_check(max_age="400d").run()).outcome is Outcome.UP

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_registry_unavailable(self, registry, npm_check, status: int) -> None:
        registry.status["/winglang"] = status
        obs = await npm_check().run()
        assert obs.failure is FailureKind.UNAVAILABLE
        assert obs.message.startswith(f"registry unavailable: {status}")

    async def test_registry_rate_limited(self, registry, npm_check) -> None:
        registry.status["/winglang"] = 429
        assert (await npm_check().run()).failure is FailureKind.RATE_LIMITED

    async def test_registry_down(self, npm_check) -> None:
        obs = await npm_check(registry="http://127.0.0.1:9/").run()
        assert obs.failure is FailureKind.UNAVAILABLE
        assert obs.details["cause"] == "connect"

    async def test_html_error_page(self, registry, npm_check) -> None:
        registry.raw["/winglang"] = ("text/html", b"<html><body>Bad gateway</body></html>")
        obs = await npm_check().run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message == "registry answered 200 with text/html instead of JSON"

    async def test_truncated_json(self, registry, npm_check) -> None:
        body = json.dumps(registry.docs["winglang"]).encode()[:200]
        registry.raw["/winglang"] = ("application/json", body)
        obs = await npm_check().run()
        assert obs.failure is FailureKind.SCHEMA
        assert "malformed JSON" in obs.message

    async def test_token_sent_to_registry_only(self, registry, npm_check) -> None:
        obs = await npm_check(token="s3cret").run()
        assert obs.outcome is Outcome.UP
        assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h in registry.requests)
        assert "s3cret" not in json.dumps(obs.message) + repr(obs.details)


class TestParsing:
    @pytest.mark.parametrize(
        "fixture",
        ["winglang-packument-captured.json", "winglang-sdk-packument-captured-trimmed.json",
         "winglang-abbreviated-upstream-format-reconstructed.json", "doc-example-full-tiny-tarball.json",
         "doc-example-abbreviated-tiny-tarball.json"],
    )  # fmt: skip
    def test_real_documents_resolve(self, fixture: str) -> None:
        doc = load_doc(fixture, "https://registry.example")
        resolved = resolve_tag(doc, doc["name"], "latest")
        assert isinstance(resolved, NpmVersion), resolved
        assert resolved.version == doc["dist-tags"]["latest"]
        assert resolved.tarball.startswith("https://registry.example/")

    def test_time_formats(self) -> None:
        full = load_doc("doc-example-full-tiny-tarball.json", "https://r")
        resolved = resolve_tag(full, "tiny-tarball", "latest")
        assert isinstance(resolved, NpmVersion)
        assert resolved.published_at == datetime(2015, 3, 24, 0, 12, 24, 39000, tzinfo=UTC)

    @given(doc=ANY_JSON)
    def test_arbitrary_json_never_crashes(self, doc: Any) -> None:
        result = resolve_tag(doc, "p", "latest")
        assert isinstance(result, NpmVersion | Observation)
        if isinstance(result, Observation):
            assert result.failure in {
                FailureKind.SCHEMA,
                FailureKind.TAG_MISSING,
                FailureKind.NOT_FOUND,
            }

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_mutated_real_document_never_crashes(self, data: st.DataObject) -> None:
        doc = load_doc("winglang-sdk-packument-captured-trimmed.json", "https://r")
        mutate(data, doc)
        result = resolve_tag(doc, "@winglang/sdk", "latest")
        assert isinstance(result, NpmVersion | Observation)
