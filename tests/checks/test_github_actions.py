"""`kind: github_actions` against a local GitHub API serving the reconstructed Wing runs.

PyGithub runs in a worker thread, so its blocking client reaches the fake server that the
test's event loop serves. The fake speaks the wire format of the fixtures: ETag and 304,
`x-ratelimit-*` headers, 403/429 rate-limit answers, 404 bodies.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from monitor.checks import CheckContext
from monitor.checks.github_actions import (
    GithubActionsCheck,
    GithubActionsCheckConfig,
    Policy,
    RateBudget,
    Run,
    evaluate,
    judge,
    parse_runs,
)
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Observation, Outcome
from monitor.metrics.exporter import Metrics
from tests.fakes import FakeClock
from tests.fuzz import ANY_JSON

FIXTURES = Path(__file__).parents[1] / "fixtures" / "github"
TOKEN = "ghp_s3cr3tT0kenValue0123456789abcdefABCD"
TOKEN_HASH = hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
RESET = 1795328400  # x-ratelimit-reset in the exchanges fixture: 2026-11-22T06:20:00Z
BEFORE_RESET = datetime(2026, 11, 22, 5, 50, tzinfo=UTC)
RUN_URL = "https://github.com/winglang/wing/actions/runs/{}"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


_LIST = load("actions-workflows-list-winglang-wing-reconstructed.json")
WORKFLOWS = {w["path"].rsplit("/", 1)[1]: w for w in _LIST["workflows"]}  # file name → workflow
_EXCHANGES = load("http-exchanges-conditional-and-ratelimit-reconstructed.json")
EXCHANGES = {e["response"]["status"]: e for e in _EXCHANGES}  # status → recorded exchange
MAIN_PUSH = load("actions-runs-build-main-push-reconstructed.json")["workflow_runs"]
IN_PROGRESS = load("actions-runs-build-main-in-progress-reconstructed.json")["workflow_runs"]
PULL_REQUEST = load("actions-runs-build-pull-request-reconstructed.json")["workflow_runs"]
CANARY = load("actions-runs-canary-schedule-reconstructed.json")["workflow_runs"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def active(name: str) -> dict[str, Any]:
    """A workflow from the list fixture with `state: active` (canary.yml is disabled there)."""
    return {**WORKFLOWS[name], "state": "active"}


def pr_runs(plan: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Pull-request runs built from the captured one: (branch, conclusion), newest first."""
    template = PULL_REQUEST[0]
    runs = []
    for i, (branch, conclusion) in enumerate(plan):
        run = copy.deepcopy(template)
        run_id = template["id"] - i * 1000
        run.update(
            id=run_id,
            run_number=template["run_number"] - i,
            head_branch=branch,
            head_sha=hashlib.sha1(f"{branch}{i}".encode()).hexdigest(),  # noqa: S324  # fake sha
            conclusion=conclusion,
            status="completed" if conclusion else "in_progress",
            created_at=f"{at('2025-10-28T05:05:07') - timedelta(hours=i):%Y-%m-%dT%H:%M:%SZ}",
            html_url=RUN_URL.format(run_id),
        )
        runs.append(run)
    return runs


# --- the fake API ---------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str  # as requested, prefix included
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0  # what the fake answered


@dataclass
class FakeGitHub:
    """Workflows and their runs at `{prefix}/repos/winglang/wing/actions/workflows/…`."""

    prefix: str = ""
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name → workflow
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # file name → runs
    as_of: datetime | None = None  # serve only runs created by then, as the API did then
    canned: dict[str, list[web.Response]] = field(default_factory=dict)  # path → answers
    seen: list[Seen] = field(default_factory=list)
    limit: int = 5000
    remaining: int = 4988
    reset: int = RESET
    release: asyncio.Event | None = None  # when set, requests wait for it
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    @property
    def api_url(self) -> str:
        return self.base + self.prefix

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def rate_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-used": str(self.limit - self.remaining),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-resource": "core",
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers))
        self.seen.append(seen)
        if self.release is not None:
            await self.release.wait()
        response = self._respond(request)
        seen.status = response.status
        return response

    def _respond(self, request: web.Request) -> web.Response:
        if not request.path.startswith(f"{self.prefix}/"):
            return exchange(404)
        path = request.path.removeprefix(self.prefix)
        if self.canned.get(path):
            return self.canned[path].pop(0)
        doc = self._document(path, request.query)
        if doc is None:
            return exchange(404)
        body = json.dumps(doc)
        etag = f'W/"{hashlib.sha256(body.encode()).hexdigest()}"'
        authorized = "Authorization" in request.headers
        if request.headers.get("If-None-Match") == etag:
            if not authorized:  # only authorized 304s are free
                self.remaining -= 1
            return web.Response(status=304, headers={"etag": etag, **self.rate_headers()})
        self.remaining -= 1
        headers = {
            "etag": etag,
            "cache-control": "private, max-age=60, s-maxage=60",
            "x-github-api-version-selected": "2022-11-28",
            **self.rate_headers(),
        }
        return web.Response(
            text=body, content_type="application/json", charset="utf-8", headers=headers
        )

    def _document(self, path: str, query: Any) -> Any:
        m = re.fullmatch(r"/repos/winglang/wing/actions/workflows/([^/]+)(/runs)?", path)
        if not m:
            return None
        name = next((k for k, w in self.workflows.items() if m.group(1) in (k, str(w["id"]))), None)
        if name is None:
            return None
        if not m.group(2):
            return self.workflows[name]
        runs = [
            r
            for r in self.runs.get(name, [])
            if query.get("branch", r["head_branch"]) == r["head_branch"]
            and query.get("event", r["event"]) == r["event"]
            and (self.as_of is None or at(r["created_at"][:-1]) <= self.as_of)
        ]
        runs.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        per_page = int(query.get("per_page", 30))
        return {"total_count": len(runs), "workflow_runs": runs[:per_page]}


def exchange(status: int) -> web.Response:
    """The answer recorded in the exchanges fixture for this status."""
    response = EXCHANGES[status]["response"]
    body = response.get("body")
    return web.Response(
        status=status,
        body=json.dumps(body).encode() if body is not None else None,
        headers=response["headers"],
    )


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
async def github(aiohttp_server) -> FakeGitHub:
    fake = FakeGitHub()
    fake.workflows = {"build.yml": WORKFLOWS["build.yml"], "canary.yml": WORKFLOWS["canary.yml"]}
    fake.runs = {
        "build.yml": copy.deepcopy(MAIN_PUSH + PULL_REQUEST),
        "canary.yml": copy.deepcopy(CANARY),
    }
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@dataclass
class Builder:
    session: aiohttp.ClientSession
    github: FakeGitHub
    metrics: Metrics
    clock: FakeClock = field(default_factory=lambda: FakeClock(at("2025-02-04T00:00:00")))
    shared: dict[str, Any] = field(default_factory=dict)  # one per app: budgets live here
    made: list[GithubActionsCheck] = field(default_factory=list)

    def __call__(self, **fields: Any) -> GithubActionsCheck:
        fields.setdefault("repo", "winglang/wing")
        fields.setdefault("workflow", "build.yml")
        fields.setdefault("api_url", self.github.api_url)
        fields.setdefault("timeout", "5s")
        config = GithubActionsCheckConfig(name="t", kind="github_actions", **fields)
        ctx = CheckContext(
            session=self.session, clock=self.clock, metrics=self.metrics, shared=self.shared
        )
        check = GithubActionsCheck(config.resolved(Defaults()), ctx)
        self.made.append(check)
        return check


@pytest.fixture
def build(session, github) -> Iterator[Builder]:
    builder = Builder(session, github, Metrics(CollectorRegistry()))
    yield builder
    for check in builder.made:
        check.close()


def main_build(build: Builder, **fields: Any) -> GithubActionsCheck:
    return build(branch="main", event="push", **fields)


def remaining_gauge(build: Builder, budget: str) -> float | None:
    labels = {"api": "127.0.0.1", "budget": budget}
    return build.metrics.registry.get_sample_value("monitor_ratelimit_remaining", labels)


# --- the verdicts, over the wire ------------------------------------------------------


class TestMainBuild:
    async def test_latest_push_green(self, github, build) -> None:
        github.as_of = at("2025-02-04T00:00:00")  # before the October failure
        obs = await main_build(build).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == "build.yml on main (push): latest #21983 success at 43ec459"
        assert dict(obs.details) == {
            "run_url": RUN_URL.format(13099000000),
            "run_number": 21983,
            "head_sha": "43ec45981cbb3f08b19d882e86f068e7eebc6c66",
            "conclusion": "success",
            "event": "push",
            "branch": "main",
            "run_created_at": at("2025-02-03T17:02:56"),
            "last_green_sha": "43ec45981cbb3f08b19d882e86f068e7eebc6c66",
            "failing_runs": 0,
            "window_runs": 8,
            "window_failures": 5,
        }
        workflow, runs = github.seen
        assert (workflow.method, workflow.path) == (
            "GET",
            "/repos/winglang/wing/actions/workflows/build.yml",
        )
        assert runs.path == "/repos/winglang/wing/actions/workflows/build.yml/runs"
        assert runs.query == {"branch": "main", "event": "push", "per_page": "30"}
        assert runs.headers["Accept"] == "application/vnd.github+json"
        assert runs.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert runs.headers["User-Agent"].startswith("project-asset-monitor/")
        assert "Authorization" not in runs.headers
        assert "If-None-Match" not in runs.headers

    async def test_latest_failure(self, build) -> None:
        obs = await main_build(build).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.RUN_FAILED)
        assert obs.message == (
            "build.yml on main (push): the latest run failed; #21990 failure at 8fb4c79 "
            f"({RUN_URL.format(13100000000)}); last green #21983 at 43ec459"
        )
        assert obs.details["failing_runs"] == 1
        assert obs.details["last_green_sha"] == "43ec45981cbb3f08b19d882e86f068e7eebc6c66"

    @pytest.mark.parametrize("max_failures", [1, 3])
    async def test_broken_main_streak(self, github, build, max_failures: int) -> None:
        github.as_of = at("2025-01-28T09:00:00")  # after 80504738, before the fix bc747465
        obs = await main_build(build, max_consecutive_failures=max_failures).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.RUN_FAILED)
        assert obs.message == (
            "build.yml on main (push): 5 failed runs in a row; latest #21969 failure at 8050473 "
            f"({RUN_URL.format(13097000000)}); last green #21934 at 0dca2e2"
        )
        assert obs.details["failing_runs"] == 5
        assert obs.details["head_sha"].startswith("80504738")

    async def test_streak_under_the_threshold(self, github, build) -> None:
        github.as_of = at("2025-01-23T10:00:00")  # only 06454c9b has failed so far
        obs = await main_build(build, max_consecutive_failures=3).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == (
            "build.yml on main (push): latest #21941 failure at 06454c9; "
            "1 failed in a row, under max_consecutive_failures 3"
        )
        assert obs.details["failing_runs"] == 1

    async def test_streak_ends_with_the_fix(self, github, build) -> None:
        github.as_of = at("2025-01-28T12:00:00")  # bc747465 released v0.85.48
        obs = await main_build(build, max_consecutive_failures=3).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == "build.yml on main (push): latest #21976 success at bc74746"

    async def test_superseded_cancelled_is_ignored(self, github, build) -> None:
        github.runs["build.yml"][0]["conclusion"] = "cancelled"  # #21990, 8fb4c792
        github.runs["build.yml"].extend(copy.deepcopy(IN_PROGRESS))  # a newer run, same branch
        obs = await main_build(build).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == (
            "build.yml on main (push): latest #21983 success at 43ec459; #21991 in_progress"
        )

    async def test_lone_cancelled_counts_as_failed(self, github, build) -> None:
        github.runs["build.yml"][0]["conclusion"] = "cancelled"
        obs = await main_build(build).run()
        assert obs.failure is FailureKind.RUN_FAILED
        assert obs.message.startswith(
            "build.yml on main (push): the latest run failed; #21990 cancelled at 8fb4c79"
        )
        assert obs.details["conclusion"] == "cancelled"

    async def test_in_progress_newest_is_not_a_result(self, github, build) -> None:
        github.runs["build.yml"].extend(copy.deepcopy(IN_PROGRESS))
        obs = await main_build(build).run()
        # #21991 is still running: the verdict is #21990's
        assert obs.failure is FailureKind.RUN_FAILED
        assert obs.details["run_number"] == 21990

    async def test_only_in_progress(self, github, build) -> None:
        github.runs["build.yml"] = copy.deepcopy(IN_PROGRESS)
        obs = await main_build(build).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == (
            "build.yml on main (push): no completed runs yet; newest #21991 in_progress"
        )
        assert obs.details["conclusion"] is None
        assert obs.details["last_green_sha"] is None

    async def test_no_runs_match(self, github, build) -> None:
        obs = await build(branch="release/1.x").run()
        assert obs.outcome is Outcome.UP
        assert obs.message == "build.yml on release/1.x: no runs match, nothing to judge"
        assert github.seen[1].query == {"branch": "release/1.x", "per_page": "30"}

    async def test_numeric_workflow_id(self, github, build) -> None:
        github.as_of = at("2025-02-04T00:00:00")
        obs = await main_build(build, workflow=30000000).run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message.startswith("30000000 on main (push): latest #21983 success")
        assert github.paths()[0] == "/repos/winglang/wing/actions/workflows/30000000"


class TestPullRequests:
    PLAN: list[tuple[str, str | None]] = [
        ("feat-a", "success"),
        ("feat-b", "failure"),
        ("feat-c", "failure"),
        ("feat-a", "cancelled"),  # superseded by the newer feat-a run: ignored
        ("feat-d", "success"),
        ("feat-e", "failure"),
        ("feat-f", "skipped"),  # says nothing: ignored
        ("feat-g", "success"),
        ("feat-h", "timed_out"),
        ("feat-i", "success"),
        ("feat-j", "success"),
    ]

    @pytest.fixture(autouse=True)
    def _prs(self, github: FakeGitHub) -> None:
        github.runs["build.yml"] = MAIN_PUSH + pr_runs(self.PLAN)

    async def test_failure_rate_over(self, build) -> None:
        check = build(event="pull_request", max_consecutive_failures=5, max_failure_rate=0.3)
        obs = await check.run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.FAILURE_RATE)
        assert obs.message == (
            "build.yml (pull_request): 4 of 9 recent runs failed (44%), over max_failure_rate "
            f"0.3; latest #21989 success at {obs.details['head_sha'][:7]} "
            f"({RUN_URL.format(13150000000)})"
        )
        assert (obs.details["window_failures"], obs.details["window_runs"]) == (4, 9)

    async def test_failure_rate_under(self, build) -> None:
        check = build(event="pull_request", max_consecutive_failures=5, max_failure_rate=0.5)
        obs = await check.run()
        assert obs.outcome is Outcome.UP, obs.message

    async def test_window_takes_the_newest(self, build) -> None:
        check = build(
            event="pull_request", max_consecutive_failures=5, max_failure_rate=0.5, window=3
        )
        obs = await check.run()
        assert obs.failure is FailureKind.FAILURE_RATE
        assert obs.message.startswith("build.yml (pull_request): 2 of 3 recent runs failed (67%)")


class TestCanary:
    async def test_disabled_by_inactivity(self, github, build) -> None:
        obs = await build(workflow="canary.yml", branch="main", event="schedule").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.WORKFLOW_DISABLED)
        assert obs.message == (
            "canary.yml in winglang/wing is disabled (disabled_inactivity: GitHub turned it off "
            "after 60 days without repository activity); no new runs start until it is enabled "
            "again"
        )
        assert obs.details["workflow_state"] == "disabled_inactivity"
        assert github.paths() == ["/repos/winglang/wing/actions/workflows/canary.yml"]

    async def test_fresh(self, github, build) -> None:
        github.workflows["canary.yml"] = active("canary.yml")
        build.clock = FakeClock(at("2025-04-04T01:00:00"))
        obs = await build(workflow="canary.yml", branch="main", max_age="2h").run()
        assert obs.outcome is Outcome.UP, obs.message
        # the cancelled #8996 is superseded by newer hourly runs; #8998 failed
        assert obs.message == "canary.yml on main: latest #9000 success at 43ec459"
        assert (obs.details["window_failures"], obs.details["window_runs"]) == (1, 5)

    async def test_stale(self, github, build) -> None:
        github.workflows["canary.yml"] = active("canary.yml")
        build.clock = FakeClock(at("2026-11-22T00:00:00"))
        obs = await build(workflow="canary.yml", branch="main", max_age="2h").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.STALE)
        assert obs.message == (
            "canary.yml on main: newest run #9000 was created 2025-04-04 00:09Z, over max_age 2h"
        )
        assert obs.details["age_s"] // 86_400 == 596  # the volatile number: a detail

    async def test_stale_when_nothing_ran(self, github, build) -> None:
        github.workflows["canary.yml"] = active("canary.yml")
        github.runs["canary.yml"] = load("actions-runs-empty.json")["workflow_runs"]
        obs = await build(workflow="canary.yml", max_age="1d").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.STALE)
        assert obs.message == "canary.yml: no runs match, expected one within max_age 1d"


class TestNotFound:
    async def test_unknown_workflow(self, github, build) -> None:
        obs = await build(workflow="release.yml").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.NOT_FOUND)
        assert obs.message == (
            "GitHub API: workflow release.yml not found in winglang/wing (404 Not Found); "
            "a private repository needs a token"
        )
        assert github.paths() == ["/repos/winglang/wing/actions/workflows/release.yml"]

    async def test_unknown_workflow_with_token(self, build) -> None:
        obs = await build(workflow="release.yml", token=TOKEN).run()
        assert (
            obs.message
            == "GitHub API: workflow release.yml not found in winglang/wing (404 Not Found)"
        )

    async def test_deleted(self, github, build) -> None:
        github.workflows["build.yml"] = {**WORKFLOWS["build.yml"], "state": "deleted"}
        obs = await build().run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.NOT_FOUND)
        assert obs.message == "build.yml in winglang/wing was deleted"


# --- conditional requests and rate limits ---------------------------------------------


class TestConditionalRequests:
    async def test_second_run_sends_etag_and_reuses_the_304(self, github, build) -> None:
        check = main_build(build, token=TOKEN)
        first = await check.run()
        remaining = github.remaining
        second = await check.run()
        assert second == first
        assert github.remaining == remaining  # authorized 304s are free
        assert [s.status for s in github.seen] == [200, 200, 304, 304]
        sent = [s.headers.get("If-None-Match") for s in github.seen]
        assert sent[:2] == [None, None]
        assert str(sent[2]).startswith('W/"')
        assert str(sent[3]).startswith('W/"')
        assert sent[3] != sent[2]  # each URL keeps its own ETag

    async def test_changed_data_is_fetched_again(self, github, build) -> None:
        check = main_build(build)
        assert (await check.run()).failure is FailureKind.RUN_FAILED
        github.runs["build.yml"][0]["conclusion"] = "success"  # re-run went green
        obs = await check.run()
        assert obs.outcome is Outcome.UP, obs.message
        assert obs.message == "build.yml on main (push): latest #21990 success at 8fb4c79"

    async def test_github_enterprise_prefix(self, aiohttp_server, build) -> None:
        fake = FakeGitHub(
            prefix="/api/v3",
            workflows={"build.yml": WORKFLOWS["build.yml"]},
            runs={"build.yml": copy.deepcopy(MAIN_PUSH)},
        )
        server = await aiohttp_server(fake.app())
        fake.base = str(server.make_url("")).rstrip("/")
        check = main_build(build, api_url=f"{fake.base}/api/v3/")
        obs = await check.run()
        assert obs.failure is FailureKind.RUN_FAILED
        assert [(s.path, s.status) for s in fake.seen] == [
            ("/api/v3/repos/winglang/wing/actions/workflows/build.yml", 200),
            ("/api/v3/repos/winglang/wing/actions/workflows/build.yml/runs", 200),
        ]
        assert check.target == "127.0.0.1"


class TestRateLimits:
    async def test_primary_limit_blocks_every_check_on_the_budget(self, github, build) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        runs_path = "/repos/winglang/wing/actions/workflows/build.yml/runs"
        github.canned[runs_path] = [exchange(403)]
        first, second = main_build(build), build(workflow="canary.yml")
        obs = await first.run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.RATE_LIMITED)
        assert obs.message == (
            "GitHub API rate limit exhausted (403 Forbidden, 0 of 60 left); not calling the "
            "GitHub API until 2026-11-22 06:20:00Z"
        )
        assert obs.details["retry_in"] == "30m"
        assert obs.details["retry_after_s"] == 1800
        assert obs.details["budget"] == "anonymous"
        assert len(github.seen) == 2

        obs = await second.run()  # same (anonymous) budget: no request at all
        assert obs.failure is FailureKind.RATE_LIMITED
        assert len(github.seen) == 2
        assert remaining_gauge(build, "anonymous") == 0

        await build.clock.advance(1799)
        later = await second.run()
        assert later.message == obs.message  # the same message: no new timeline line
        assert later.details["retry_in"] == "1s"
        assert len(github.seen) == 2
        await build.clock.advance(1)
        obs = await second.run()
        assert obs.failure is FailureKind.WORKFLOW_DISABLED  # canary.yml, asked again
        assert len(github.seen) == 3

    async def test_other_tokens_keep_their_budget(self, github, build) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        github.canned["/repos/winglang/wing/actions/workflows/build.yml"] = [exchange(403)]
        assert (await main_build(build).run()).failure is FailureKind.RATE_LIMITED
        obs = await main_build(build, token=TOKEN).run()
        assert obs.failure is FailureKind.RUN_FAILED
        assert len(github.seen) == 3

    async def test_secondary_limit_waits_retry_after(self, github, build) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        github.canned["/repos/winglang/wing/actions/workflows/build.yml"] = [exchange(429)]
        check = main_build(build, token=TOKEN)
        obs = await check.run()
        assert obs.failure is FailureKind.RATE_LIMITED
        assert obs.message == (
            "GitHub API secondary rate limit (429 Too Many Requests); not calling the GitHub "
            "API until 2026-11-22 05:51:00Z"
        )
        assert obs.details["budget"] == TOKEN_HASH
        await build.clock.advance(59)
        assert (await check.run()).failure is FailureKind.RATE_LIMITED
        assert len(github.seen) == 1
        await build.clock.advance(1)
        assert (await check.run()).failure is FailureKind.RUN_FAILED
        assert len(github.seen) == 3

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("Retry-After", "300"),
            ("retry-after", "300"),
            ("RETRY-AFTER", "300"),
            ("Retry-After", "Sun, 22 Nov 2026 05:55:00 GMT"),  # an HTTP-date: 300 s from now
        ],
    )
    async def test_secondary_limit_honours_the_wait_github_asks_for(
        self, github, build, name: str, value: str
    ) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        body = {"message": "You have exceeded a secondary rate limit."}
        path = "/repos/winglang/wing/actions/workflows/build.yml"
        github.canned[path] = [web.json_response(body, status=429, headers={name: value})]
        check = main_build(build, token=TOKEN)
        obs = await check.run()
        assert obs.failure is FailureKind.RATE_LIMITED
        assert obs.details["retry_after_s"] == 300  # not the 60 s fallback
        await build.clock.advance(299)
        assert (await check.run()).failure is FailureKind.RATE_LIMITED
        assert len(github.seen) == 1  # GitHub was not asked again before it said
        await build.clock.advance(1)
        assert (await check.run()).failure is FailureKind.RUN_FAILED

    async def test_secondary_403_without_retry_after_backs_off(self, github, build) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
        path = "/repos/winglang/wing/actions/workflows/build.yml"
        github.canned[path] = [web.json_response(body, status=403) for _ in range(2)]
        check = main_build(build)
        assert (await check.run()).details["retry_after_s"] == 60
        await build.clock.advance(60)
        assert (await check.run()).details["retry_after_s"] == 120  # doubled

    async def test_reserve_is_left_for_others(self, github, build) -> None:
        build.clock = FakeClock(BEFORE_RESET)
        github.limit, github.remaining = 60, 6
        check = main_build(build)
        obs = await check.run()  # two requests: 5, then 4 left, under the reserve of 5
        assert obs.failure is FailureKind.RUN_FAILED  # this run's answers still count
        obs = await check.run()
        assert obs.failure is FailureKind.RATE_LIMITED
        assert obs.message.startswith(
            "GitHub API rate limit nearly used up (4 of 60 left, reserve 5); not calling"
        )
        assert len(github.seen) == 2
        assert remaining_gauge(build, "anonymous") == 4

    async def test_forbidden_without_rate_limit_is_auth(self, github, build) -> None:
        body = {"message": "Resource not accessible by personal access token"}
        github.canned["/repos/winglang/wing/actions/workflows/build.yml"] = [
            web.json_response(body, status=403, headers={"x-ratelimit-remaining": "4000"})
        ]
        obs = await main_build(build, token=TOKEN).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.AUTH)
        assert obs.message == (
            "GitHub API refused access to workflow build.yml (403 Forbidden: Resource not "
            "accessible by personal access token)"
        )


class TestToken:
    async def test_sent_as_authorization_and_never_shown(self, github, build) -> None:
        results = [await main_build(build, token=TOKEN).run()]
        github.canned["/repos/winglang/wing/actions/workflows/build.yml"] = [
            web.json_response({"message": f"Bad credentials: {TOKEN}"}, status=401),
            exchange(429),
        ]
        results.append(await main_build(build, token=TOKEN).run())
        results.append(await main_build(build, token=TOKEN).run())
        results.append(await main_build(build, token=TOKEN).run())  # refused by the budget
        assert [r.failure for r in results] == [
            FailureKind.RUN_FAILED,
            FailureKind.AUTH,
            FailureKind.RATE_LIMITED,
            FailureKind.RATE_LIMITED,
        ]
        assert (
            results[1].message
            == "GitHub API refused the token (401 Unauthorized: Bad credentials: ***)"
        )
        assert {s.headers["Authorization"] for s in github.seen} == {f"token {TOKEN}"}
        for obs in results:
            assert TOKEN not in repr(obs)
        labels = [s.labels for m in build.metrics.registry.collect() for s in m.samples]
        assert TOKEN not in repr(labels)
        assert {"api": "127.0.0.1", "budget": TOKEN_HASH} in labels

    async def test_empty_token_is_anonymous(self, github, build) -> None:
        await main_build(build, token="").run()
        assert "Authorization" not in github.seen[0].headers


# --- broken answers -------------------------------------------------------------------


class TestBrokenAnswers:
    RUNS = "/repos/winglang/wing/actions/workflows/build.yml/runs"

    async def test_html_error_page(self, github, build) -> None:
        github.canned[self.RUNS] = [
            web.Response(text="<html><body>Unicorn!</body></html>", content_type="text/html")
        ]
        obs = await main_build(build).run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.SCHEMA)
        assert obs.message == "GitHub API answered runs with text/html instead of JSON"

    async def test_truncated_json(self, github, build) -> None:
        body = json.dumps({"total_count": 9, "workflow_runs": MAIN_PUSH})[:300]
        github.canned[self.RUNS] = [web.Response(text=body, content_type="application/json")]
        obs = await main_build(build).run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message.startswith("GitHub API answered runs with malformed JSON (")

    async def test_wrong_types(self, github, build) -> None:
        runs = copy.deepcopy(MAIN_PUSH)
        runs[2]["created_at"] = 1738000000
        doc = {"total_count": 9, "workflow_runs": runs}
        github.canned[self.RUNS] = [web.json_response(doc)]
        obs = await main_build(build).run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message == (
            "GitHub API: runs of build.yml on main (push): workflow_runs[2] has no valid created_at"
        )

    async def test_workflow_without_state(self, github, build) -> None:
        github.workflows["build.yml"] = {"id": 30000000, "name": "Build"}
        obs = await build().run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message == "GitHub API: workflow build.yml has no state"

    async def test_bad_credentials(self, github, build) -> None:
        github.canned["/repos/winglang/wing/actions/workflows/build.yml"] = [
            web.json_response({"message": "Bad credentials"}, status=401)
        ]
        obs = await build(token=TOKEN).run()
        assert (obs.failure, obs.message) == (
            FailureKind.AUTH,
            "GitHub API refused the token (401 Unauthorized: Bad credentials)",
        )

    async def test_bad_gateway_is_retried_twice(self, github, build) -> None:
        github.canned[self.RUNS] = [web.Response(status=502, text="bad gateway") for _ in range(3)]
        obs = await main_build(build).run()
        assert (obs.failure, obs.message) == (
            FailureKind.UNAVAILABLE,
            "GitHub API unavailable: 502 Bad Gateway",
        )
        assert github.paths().count(self.RUNS) == 3

    async def test_bad_gateway_then_ok(self, github, build) -> None:
        github.canned[self.RUNS] = [web.Response(status=503)]
        obs = await main_build(build).run()
        assert obs.failure is FailureKind.RUN_FAILED
        assert github.paths().count(self.RUNS) == 2

    async def test_unexpected_status(self, github, build) -> None:
        github.canned[self.RUNS] = [web.json_response({"message": "Validation Failed"}, status=422)]
        obs = await main_build(build).run()
        assert (obs.failure, obs.message) == (
            FailureKind.PROTOCOL,
            "GitHub API answered 422 Unprocessable Entity: Validation Failed for runs",
        )

    async def test_connection_refused(self, build) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        obs = await build(api_url=f"http://127.0.0.1:{port}").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message == "GitHub API unavailable: Connection refused"

    async def test_timeout_and_a_leftover_request(self, github, build) -> None:
        github.release = asyncio.Event()
        check = build(timeout="200ms")
        obs = await check.run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message == "GitHub API did not answer within 0.2s"
        # The worker thread still waits for that answer: the next run does not pile on.
        obs = await check.run()
        assert obs.message == (
            "GitHub API: a request from an earlier run that timed out is still waiting"
        )
        assert len(github.seen) == 1
        github.release.set()


# --- config ---------------------------------------------------------------------------


class TestConfig:
    def config(self, **fields: Any) -> GithubActionsCheckConfig:
        fields.setdefault("repo", "winglang/wing")
        fields.setdefault("workflow", "build.yml")
        return GithubActionsCheckConfig(name="t", kind="github_actions", **fields)

    def test_defaults(self) -> None:
        config = self.config()
        assert (config.api_url, config.max_consecutive_failures, config.window) == (
            "https://api.github.com",
            1,
            20,
        )
        assert (config.branch, config.event, config.token, config.max_age) == (None,) * 4
        assert config.max_failure_rate is None

    def test_workflow_id_or_file(self) -> None:
        assert self.config(workflow=30000000).workflow == 30000000
        assert self.config(workflow="canary.yml").workflow == "canary.yml"

    @pytest.mark.parametrize(
        "fields",
        [
            {"repo": "winglang"},
            {"repo": "https://github.com/winglang/wing"},
            {"workflow": ".github/workflows/build.yml"},
            {"workflow": 0},
            {"workflow": ""},
            {"window": 0},
            {"window": 101},
            {"max_failure_rate": 1.5},
            {"max_consecutive_failures": 0},
            {"max_age": "0s"},
            {"api_url": "api.github.com"},
            {"event": "Push Event"},
            {"unknown": 1},
        ],
    )
    def test_refused(self, fields: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            self.config(**fields)

    def test_token_is_secret(self) -> None:
        assert TOKEN not in repr(self.config(token=TOKEN))

    async def test_target_is_the_api_host(self, build) -> None:
        assert build(api_url="https://github.example.com/api/v3").target == "github.example.com"
        assert build(api_url="https://api.github.com").target == "api.github.com"


# --- the pure judgement ---------------------------------------------------------------


def run(n: int, conclusion: str | None, *, branch: str = "main", hours_ago: int = 0) -> Run:
    return Run(
        id=n,
        number=n,
        branch=branch,
        sha=f"{n:07d}abcdef",
        event="push",
        status="completed" if conclusion else "in_progress",
        conclusion=conclusion,
        created_at=NOW - timedelta(hours=hours_ago),
        url=None,
    )


NOW = at("2026-11-22T00:00:00")
POLICY = Policy(workflow="build.yml", branch="main")


class TestEvaluate:
    @pytest.mark.parametrize(
        ("conclusions", "failed", "streak"),
        [
            (["success"], False, 0),
            (["failure"], True, 1),
            (["timed_out", "success"], True, 1),
            (["startup_failure"], True, 1),
            (["skipped", "neutral", "action_required", "stale", "success"], False, 0),
            (["skipped", "failure", "success"], True, 1),  # skipped neither fails nor breaks
            (["cancelled"], True, 1),  # nothing newer: it counts
            (["failure", "skipped", "failure", "success"], True, 2),
        ],
    )
    def test_table(self, conclusions: list[str], failed: bool, streak: int) -> None:
        runs = [run(100 - i, c, hours_ago=i) for i, c in enumerate(conclusions)]
        obs = evaluate(runs, NOW, POLICY)
        assert (obs.failure is FailureKind.RUN_FAILED) is failed
        assert obs.details["failing_runs"] == streak

    def test_superseded_only_by_the_same_branch(self) -> None:
        runs = [run(3, "success", branch="other"), run(2, "cancelled", hours_ago=1)]
        assert evaluate(runs, NOW, POLICY).details["window_failures"] == 1
        runs = [run(3, None), run(2, "cancelled", hours_ago=1), run(1, "success", hours_ago=2)]
        obs = evaluate(runs, NOW, POLICY)
        assert (obs.outcome, obs.details["window_failures"]) == (Outcome.UP, 0)

    def test_superseded_failure_still_counts(self) -> None:
        runs = [run(3, None), run(2, "failure", hours_ago=1)]
        assert evaluate(runs, NOW, POLICY).failure is FailureKind.RUN_FAILED

    def test_streak_longer_than_the_page(self) -> None:
        runs = [run(10 - i, "failure", hours_ago=i) for i in range(3)]
        obs = evaluate(runs, NOW, POLICY, total_count=50)
        assert obs.message.startswith("build.yml on main: at least 3 failed runs in a row;")
        assert obs.message.endswith("; no green run among the last 3")

    def test_failure_before_rate_before_staleness(self) -> None:
        policy = Policy(workflow="w", max_failure_rate=0.1, max_age=timedelta(hours=1))
        old = [run(2, "failure", hours_ago=5), run(1, "success", hours_ago=6)]
        assert evaluate(old, NOW, policy).failure is FailureKind.RUN_FAILED
        old = [run(3, "success", hours_ago=5), run(2, "failure", hours_ago=6)]
        assert evaluate(old, NOW, policy).failure is FailureKind.FAILURE_RATE
        old = [run(3, "success", hours_ago=5)]
        assert evaluate(old, NOW, policy).failure is FailureKind.STALE

    def test_stale_counts_runs_of_any_status(self) -> None:
        policy = Policy(workflow="w", max_age=timedelta(hours=1))
        runs = [run(3, None), run(2, "success", hours_ago=30)]
        assert evaluate(runs, NOW, policy).outcome is Outcome.UP

    def test_parse_sorts_newest_first(self) -> None:
        doc = {"total_count": 9, "workflow_runs": list(reversed(MAIN_PUSH))}
        parsed = parse_runs(doc, POLICY)
        assert not isinstance(parsed, Observation)
        runs, total = parsed
        assert [r.number for r in runs][:3] == [21990, 21983, 21976]
        assert total == 9


# --- fuzz: arbitrary and mutated documents never crash the judgement ------------------

RUN_FIELDS = [
    "id",
    "run_number",
    "head_branch",
    "head_sha",
    "event",
    "status",
    "conclusion",
    "created_at",
    "html_url",
]
POLICIES = st.builds(
    Policy,
    workflow=st.text(min_size=1, max_size=10),
    branch=st.none() | st.text(max_size=10),
    max_consecutive_failures=st.integers(1, 100),
    max_failure_rate=st.none() | st.floats(0, 1),
    window=st.integers(1, 100),
    max_age=st.none() | st.timedeltas(min_value=timedelta(seconds=1)),
)
NOWS = st.datetimes(timezones=st.just(UTC))
RATE_HEADERS = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "Retry-After",
]


def _assert_observation(obs: Any) -> None:
    assert isinstance(obs, Observation)
    assert isinstance(obs.message, str)
    assert obs.message


class TestFuzz:
    @settings(max_examples=300, deadline=None)
    @given(workflow=ANY_JSON, runs=ANY_JSON, now=NOWS, policy=POLICIES)
    def test_arbitrary_json(self, workflow: Any, runs: Any, now: datetime, policy: Policy) -> None:
        _assert_observation(judge(workflow, runs, now, policy))
        _assert_observation(judge({"state": "active"}, runs, now, policy))
        _assert_observation(judge({"state": "active"}, {"workflow_runs": runs}, now, policy))

    @settings(max_examples=300, deadline=None)
    @given(
        data=st.data(),
        source=st.sampled_from([MAIN_PUSH, CANARY, PULL_REQUEST + IN_PROGRESS]),
        now=NOWS,
        policy=POLICIES,
    )
    def test_mutated_fixtures(self, data, source, now: datetime, policy: Policy) -> None:
        runs = copy.deepcopy(source)
        for _ in range(data.draw(st.integers(1, 6))):
            item = runs[data.draw(st.integers(0, len(runs) - 1))]
            key = data.draw(st.sampled_from(RUN_FIELDS))
            choice = data.draw(st.integers(0, 3))
            if choice == 0:
                item.pop(key, None)
            elif choice == 1:
                item[key] = data.draw(ANY_JSON)
            elif choice == 2:
                item[key] = data.draw(
                    st.sampled_from(
                        [
                            "cancelled",
                            "completed",
                            "failure",
                            "2025-01-01T00:00:00+14:00",
                            "0001-01-01T00:00:00Z",
                            "9999-12-31T23:59:59.9999999Z",
                            "",
                        ]
                    )
                )
            else:
                runs.append(copy.deepcopy(item))
        obs = judge(
            {"state": "active"}, {"total_count": len(runs), "workflow_runs": runs}, now, policy
        )
        _assert_observation(obs)

    @settings(max_examples=200, deadline=None)
    @given(
        status=st.integers(100, 599),
        headers=st.dictionaries(
            st.sampled_from(RATE_HEADERS),
            st.text(max_size=12) | st.integers(-(10**20), 10**20).map(str),
        ),
        body=st.text(max_size=40),
        now=st.datetimes(timezones=st.just(UTC)),
    )
    def test_budget_headers(self, status: int, headers, body: str, now: datetime) -> None:
        budget = RateBudget("api.github.com", "anonymous", None)
        obs = budget.observe(status, headers, body, now)
        assert obs is None or obs.failure is FailureKind.RATE_LIMITED
        refusal = budget.refusal(now)
        assert refusal is None or refusal.failure is FailureKind.RATE_LIMITED


def test_budget_exports_nothing_until_github_answers() -> None:
    from prometheus_client import CollectorRegistry

    from monitor.checks.github_actions import RateBudget
    from monitor.metrics.exporter import Metrics

    registry = CollectorRegistry()
    budget = RateBudget("api.github.com", "anonymous", Metrics(registry))
    labels = {"api": "api.github.com", "budget": "anonymous"}
    assert registry.get_sample_value("monitor_ratelimit_remaining", labels) is None
    budget.observe(
        200,
        {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59"},
        "",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert registry.get_sample_value("monitor_ratelimit_remaining", labels) == 59
