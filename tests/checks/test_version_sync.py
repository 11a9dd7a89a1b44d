"""`kind: version_sync` against a local registry and a local GitHub releases endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.checks import CheckContext
from monitor.checks.version_sync import VersionSyncCheck, VersionSyncCheckConfig, version_key
from monitor.config.loader import parse_config
from monitor.core.configtypes import Defaults
from monitor.core.errors import ConfigError
from monitor.core.model import FailureKind, Outcome
from tests.fakes import FakeClock
from tests.npmfake import FakeRegistry, load_doc

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "marketplace"


class Upstreams:
    def __init__(self) -> None:
        self.npm = FakeRegistry()
        self.release: dict[str, Any] | None = {"tag_name": "v0.85.49", "name": "v0.85.49"}
        self.release_headers: list[dict[str, str]] = []

    async def github(self, request: web.Request) -> web.Response:
        self.release_headers.append(dict(request.headers))
        if self.release is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response(self.release)

    def set_latest(self, package: str, version: str) -> None:
        doc = self.npm.docs[package]
        doc["versions"].setdefault(version, doc["versions"][doc["dist-tags"]["latest"]])
        doc["dist-tags"]["latest"] = version


@pytest.fixture
async def up(aiohttp_server) -> Upstreams:
    u = Upstreams()
    npm_server = await aiohttp_server(u.npm.app())
    u.npm.base = str(npm_server.make_url("")).rstrip("/")
    u.npm.docs["winglang"] = load_doc("winglang-packument-captured.json", u.npm.base)
    u.npm.docs["@winglang/sdk"] = load_doc(
        "winglang-sdk-packument-captured-trimmed.json", u.npm.base
    )
    gallery = json.loads(
        (FIXTURES / "extensionquery-response-monada-vscode-wing-reconstructed.json").read_text()
    )

    async def extensionquery(request: web.Request) -> web.Response:
        u.gallery_bodies.append(await request.json())  # type: ignore[attr-defined]
        return web.json_response(gallery)

    u.gallery_bodies = []  # type: ignore[attr-defined]
    app = web.Application()
    app.router.add_get("/repos/{owner}/{repo}/releases/latest", u.github)
    app.router.add_post("/_apis/public/gallery/extensionquery", extensionquery)
    gh = await aiohttp_server(app)
    u.github_url = str(gh.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    return u


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))


@pytest.fixture
def sync_check(session, up, clock):
    def build(grace: str = "1h", github: bool = True, **fields: Any) -> VersionSyncCheck:
        sources: list[dict[str, Any]] = [
            {"npm": "winglang", "registry": up.npm.base},
            {"npm": "@winglang/sdk", "registry": up.npm.base},
        ]
        if github:
            sources.append({"github_release": "winglang/wing", "api_url": up.github_url, **fields})
        config = VersionSyncCheckConfig(
            name="sync", kind="version_sync", sources=sources, grace=grace
        )
        return VersionSyncCheck(
            config.resolved(Defaults()), CheckContext(session=session, clock=clock)
        )

    return build


async def test_in_sync(sync_check) -> None:
    obs = await sync_check().run()
    assert obs.outcome is Outcome.UP, obs.message
    assert obs.message == "all 3 sources at 0.85.49"
    assert obs.details["versions"] == {
        "npm:winglang": "0.85.49", "npm:@winglang/sdk": "0.85.49", "github:winglang/wing": "0.85.49",
    }  # fmt: skip


async def test_lag_within_grace_then_skew(sync_check, up, clock) -> None:
    check = sync_check(grace="1h")
    up.set_latest("@winglang/sdk", "0.85.50")  # sdk published first, the rest still to come
    up.release = {"tag_name": "v0.85.50"}
    first = await check.run()
    assert first.outcome is Outcome.UP
    assert first.message == (
        "converging: npm:winglang at 0.85.49 lags 0.85.50 (npm:@winglang/sdk) "
        "since 2026-11-22 12:00 UTC (grace 1h)"
    )
    await clock.advance(30 * 60)
    assert (await check.run()).outcome is Outcome.UP
    await clock.advance(31 * 60)
    late = await check.run()
    assert (late.outcome, late.failure) == (Outcome.DOWN, FailureKind.VERSION_SKEW)
    assert late.message == (
        "npm:winglang at 0.85.49 lags 0.85.50 (npm:@winglang/sdk) since 2026-11-22 12:00 UTC, over grace 1h"
    )
    assert late.details["lagging"]["npm:winglang"]["version"] == "0.85.49"
    up.set_latest("winglang", "0.85.50")
    assert (await check.run()).message == "all 3 sources at 0.85.50"


async def test_a_new_lag_restarts_the_clock(sync_check, up, clock) -> None:
    check = sync_check(grace="10m", github=False)
    up.set_latest("@winglang/sdk", "0.85.50")
    await check.run()
    await clock.advance(5 * 60)
    up.set_latest("winglang", "0.85.50")
    up.set_latest("@winglang/sdk", "0.85.51")  # the next release starts
    await clock.advance(6 * 60)
    obs = await check.run()
    assert obs.outcome is Outcome.UP  # lagging 0.85.51 only since now, not since 11 min ago
    assert "since 2026-11-22 12:11 UTC" in obs.message


async def test_source_failure_names_the_source(sync_check, up) -> None:
    up.release = None
    obs = await sync_check().run()
    assert obs.failure is FailureKind.NOT_FOUND
    assert obs.message == "github:winglang/wing: winglang/wing has no published release (404)"
    up.npm.status["/winglang"] = 503
    obs = await sync_check().run()
    assert obs.failure is FailureKind.UNAVAILABLE
    assert obs.message.startswith("npm:winglang: registry unavailable: 503")


async def test_github_token_is_sent(sync_check, up) -> None:
    await sync_check(token="ghp_x").run()
    assert up.release_headers[-1]["Authorization"] == "Bearer ghp_x"
    assert up.release_headers[-1]["Accept"] == "application/vnd.github+json"


@pytest.mark.parametrize(
    ("lower", "higher"),
    [("0.85.9", "0.85.10"), ("v0.85.49", "0.85.50"), ("1.0.0-rc.1", "1.0.0"), ("0.9.0", "1.0.0")],
)
def test_version_order(lower: str, higher: str) -> None:
    assert version_key(lower) < version_key(higher)


def test_each_source_names_exactly_one_place() -> None:
    text = (
        "checks:\n"
        "  - name: s\n"
        "    kind: version_sync\n"
        "    sources:\n"
        "      - {npm: a, github_release: o/r}\n"
        "      - {tag: next}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "m.yaml", {})
    assert [str(i) for i in info.value.issues] == [
        "m.yaml:5:9: checks[0].sources[0]: give exactly one of npm, github_release, vscode_marketplace (got 2)",
        "m.yaml:6:9: checks[0].sources[1]: give exactly one of npm, github_release, vscode_marketplace (got 0)",
    ]


async def test_marketplace_source(session, up, clock) -> None:
    sources = [
        {"npm": "winglang", "registry": up.npm.base},
        {
            "vscode_marketplace": "Monada.vscode-wing",
            "gallery_url": up.github_url + "/_apis/public/gallery",
        },
    ]
    config = VersionSyncCheckConfig(name="s", kind="version_sync", sources=sources, grace="1h")
    obs = await VersionSyncCheck(
        config.resolved(Defaults()), CheckContext(session=session, clock=clock)
    ).run()
    assert obs.outcome is Outcome.UP  # within grace
    assert obs.details["versions"]["marketplace:Monada.vscode-wing"] == "0.85.48"
    assert obs.message.startswith(
        "converging: marketplace:Monada.vscode-wing at 0.85.48 lags 0.85.49"
    )
    assert up.gallery_bodies[0]["filters"][0]["criteria"][0] == {
        "filterType": 7,
        "value": "Monada.vscode-wing",
    }
