"""Last known good: what is remembered from passing runs, what reverting means, and that
it reaches the incident, the store, the page and the API."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.checks.github_actions import GithubActionsCheckConfig
from monitor.checks.npm import NpmCheckConfig
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import CheckConfigBase, Defaults
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, FailureKind, Outcome, Severity
from monitor.engine.lastgood import LastGood, advice, capture
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.incidents.rules import SeverityRule
from tests.fakes import FakeClock, MemoryStore, settle
from tests.test_paging import World, stop

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NPM = {"package": "winglang", "tag": "latest", "tarball": "https://r/winglang-0.85.48.tgz"}


class TestAdvice:
    def test_npm_names_the_version_and_the_exact_command(self) -> None:
        good = LastGood(T0, capture("npm", {**NPM, "version": "0.85.48"}))
        block = advice("npm", good, {**NPM, "version": "0.85.49"})
        assert block is not None
        assert block["command"] == "npm dist-tag add winglang@0.85.48 latest"
        assert block["text"] == (
            "winglang@latest pointed at 0.85.48 when last healthy (2026-11-22 10:00 UTC); "
            "it now points at 0.85.49; to revert: npm dist-tag add winglang@0.85.48 latest"
        )
        assert block["at"] == T0.isoformat()
        assert block["values"] == {"package": "winglang", "tag": "latest", "version": "0.85.48"}

    def test_npm_scoped_package_and_other_tag(self) -> None:
        values = {"package": "@winglang/sdk", "tag": "next", "version": "0.86.0-rc.1"}
        block = advice("npm", LastGood(T0, values), {"package": "@winglang/sdk"})
        assert block is not None
        assert block["command"] == "npm dist-tag add @winglang/sdk@0.86.0-rc.1 next"

    def test_npm_tag_unchanged_gives_no_command(self) -> None:
        good = LastGood(T0, capture("npm", {**NPM, "version": "0.85.48"}))
        block = advice("npm", good, {**NPM, "version": "0.85.48"})
        assert block is not None
        assert block["command"] is None
        assert "still does" in block["text"]

    def test_npm_never_healthy_says_nothing(self) -> None:
        assert advice("npm", None, {**NPM, "version": "0.85.49"}) is None

    def test_actions_compare_url_from_the_run_url(self) -> None:
        good = LastGood(T0, capture("github_actions", {
            "head_sha": "a" * 40, "branch": "main",
            "run_url": "https://github.com/winglang/wing/actions/runs/1",
        }))  # fmt: skip
        failing = {"head_sha": "b" * 40, "branch": "main", "last_green_sha": None,
                   "run_url": "https://github.com/winglang/wing/actions/runs/2"}  # fmt: skip
        block = advice("github_actions", good, failing)
        assert block is not None
        assert block["url"] == f"https://github.com/winglang/wing/compare/{'a' * 40}...{'b' * 40}"
        assert block["text"].startswith(
            f"last green commit on main: {'a' * 12}; failing at {'b' * 12}"
        )

    def test_actions_green_run_from_the_api_beats_memory_and_works_on_ghe(self) -> None:
        good = LastGood(T0, {"sha": "a" * 40})
        failing = {"head_sha": "c" * 40, "last_green_sha": "b" * 40,
                   "run_url": "https://ghe.example/o/r/actions/runs/9"}  # fmt: skip
        block = advice("github_actions", good, failing)
        assert block is not None
        assert block["values"]["sha"] == "b" * 40
        assert block["url"] == f"https://ghe.example/o/r/compare/{'b' * 40}...{'c' * 40}"
        # Nothing remembered, but the API knows a green commit: still useful.
        assert advice("github_actions", None, failing) is not None
        assert advice("github_actions", None, {"head_sha": "c" * 40}) is None

    def test_marketplace_last_good_version(self) -> None:
        good = LastGood(T0, capture("vscode_marketplace", {"extension": "Monada.vscode-wing",
                                                            "version": "0.85.40", "installs": 9}))  # fmt: skip
        assert good.values == {"extension": "Monada.vscode-wing", "version": "0.85.40"}
        block = advice("vscode_marketplace", good, {"version": "0.85.41"})
        assert block is not None
        assert (
            "version 0.85.40 was listed and installable at 2026-11-22 10:00 UTC; now 0.85.41"
            in block["text"]
        )

    def test_http_when_and_the_recorded_value(self) -> None:
        details = {"status": 200, "final_url": "https://winglang.io/", "url": "https://winglang.io",
                   "recorded": "0.85.48", "recorded_from": "header X-Wing-Version"}  # fmt: skip
        block = advice("http", LastGood(T0, capture("http", details)), {"status": 503})
        assert block is not None
        assert block["text"] == (
            "last good response: HTTP 200 at 2026-11-22 10:00 UTC, header X-Wing-Version was '0.85.48'"
        )
        assert advice("http", None, {"status": 503}) is None

    def test_round_trip(self) -> None:
        good = LastGood(T0, {"version": "1"})
        assert LastGood.from_json(good.to_json()) == good


def npm_check() -> CheckConfigBase:
    return NpmCheckConfig(name="npm-winglang", kind="npm", package="winglang",
                          failure_threshold=1, success_threshold=1).resolved(Defaults())  # fmt: skip


def npm_result(clock: FakeClock, version: str, ok: bool) -> CheckResult:
    outcome, failure = (Outcome.UP, None) if ok else (Outcome.DOWN, FailureKind.DEPRECATED)
    return CheckResult("npm-winglang", "npm", outcome, failure, f"at {version}", clock.now(), 0.1,
                       details={**NPM, "version": version})  # fmt: skip


def handler_for(
    store: MemoryStore, clock: FakeClock, metrics
) -> tuple[ResultHandler, IncidentManager]:
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    handler.configure([SeverityRule.model_validate({"name": "npm", "severity": "P0"})], [])
    return handler, manager


async def test_the_incident_carries_the_revert_and_survives_a_restart(clock, metrics) -> None:
    store = MemoryStore()
    handler, manager = handler_for(store, clock, metrics)
    config = npm_check()
    await handler(config, npm_result(clock, "0.85.48", ok=True))
    assert "lastgood:npm-winglang" in store.kv  # stored when first seen
    written = store.kv["lastgood:npm-winglang"]
    await clock.advance(60)
    last_pass = clock.now()
    await handler(config, npm_result(clock, "0.85.48", ok=True))
    assert store.kv["lastgood:npm-winglang"] == written  # only the time moved: no write
    await clock.advance(60)
    await handler(config, npm_result(clock, "0.85.49", ok=False))
    incident = manager.open_for("npm-winglang")
    assert incident is not None
    assert incident.last_good is not None
    assert incident.last_good["command"] == "npm dist-tag add winglang@0.85.48 latest"
    assert incident.last_good["at"] == last_pass.isoformat()  # the time of the last pass
    assert store.incidents[incident.id].last_good == incident.last_good
    # A restart: the memory comes back from the store with the time of the last pass.
    again, _ = handler_for(store, clock, metrics)
    await again.load([config])
    assert again.last_good["npm-winglang"] == LastGood(
        last_pass, {**{k: NPM[k] for k in ("package", "tag")}, "version": "0.85.48"}
    )


async def test_the_state_and_the_last_good_are_saved_at_once_on_a_failure(clock, metrics) -> None:
    """On the failure that opens an incident both writes are in flight together (one
    round trip of waiting before the incident, not two), and a failing one still fails
    the result, to be written again."""

    class Overlapping(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.keeping = asyncio.Event()
            self.fail_kv = False

        async def save_check_state(self, check: str, state: object) -> None:
            # Waits for the last good's write to have started: one after the other, this
            # never ends.
            await asyncio.wait_for(self.keeping.wait(), 1)
            await super().save_check_state(check, state)  # type: ignore[arg-type]

        async def kv_set(self, key: str, value: str) -> None:
            self.keeping.set()
            if self.fail_kv:
                raise StoreError("kv refused")
            await super().kv_set(key, value)

    store = Overlapping()
    handler, manager = handler_for(store, clock, metrics)
    config = npm_check()
    await handler(config, npm_result(clock, "0.85.48", ok=True))  # both written
    await clock.advance(60)
    last_pass = clock.now()
    await handler(config, npm_result(clock, "0.85.48", ok=True))  # only the time moved
    store.keeping.clear()
    store.fail_kv = True
    await clock.advance(60)
    with pytest.raises(StoreError, match="kv refused"):
        await handler(config, npm_result(clock, "0.85.49", ok=False))
    assert manager.open_for("npm-winglang") is None
    store.fail_kv = False
    store.keeping.clear()
    await clock.advance(60)
    await handler(config, npm_result(clock, "0.85.49", ok=False))  # written again
    assert manager.open_for("npm-winglang") is not None
    assert json.loads(store.kv["lastgood:npm-winglang"])["at"] == last_pass.isoformat()


async def test_a_newer_failing_commit_updates_the_compare_url(clock, metrics) -> None:
    store = MemoryStore()
    handler, manager = handler_for(store, clock, metrics)
    config = GithubActionsCheckConfig(name="build", kind="github_actions", repo="o/r", workflow="b.yml",
                                      failure_threshold=1).resolved(Defaults())  # fmt: skip

    def run(sha: str, ok: bool) -> CheckResult:
        details = {"head_sha": sha, "branch": "main", "run_url": "https://github.com/o/r/actions/runs/1",
                   "last_green_sha": None if ok else "a" * 40}  # fmt: skip
        outcome, failure = (Outcome.UP, None) if ok else (Outcome.DOWN, FailureKind.RUN_FAILED)
        return CheckResult(
            "build", "github_actions", outcome, failure, sha[:4], clock.now(), 0.1, details=details
        )

    await handler(config, run("a" * 40, ok=True))
    await handler(config, run("b" * 40, ok=False))
    await handler(config, run("c" * 40, ok=False))
    incident = manager.open_for("build")
    assert incident is not None
    assert incident.last_good is not None
    assert incident.last_good["url"] == f"https://github.com/o/r/compare/{'a' * 40}...{'c' * 40}"


@pytest.mark.parametrize(
    ("severity", "in_page"), [(Severity.P0, True), (Severity.P1, True), (Severity.P2, False)]
)
async def test_p0_and_p1_pages_say_what_reverting_means(clock, metrics, severity, in_page) -> None:
    w = World(clock, metrics)
    pages: list[tuple[str, dict[str, str]]] = []
    deliver = w.outbox.deliver

    async def record(notifier: str, payload: str) -> None:
        from monitor.paging.pager import from_payload

        n = from_payload(payload)
        if n.event.value == "trigger":
            pages.append((n.text, dict(n.links)))
        await deliver(notifier, payload)

    w.outbox.deliver = record
    tasks = await w.start()
    good: dict[str, object] = {"text": "last green commit on main: aaaa; changes since: https://c", "url": "https://c",
            "command": None, "at": None, "values": {}}  # fmt: skip
    result = CheckResult(
        "docs", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503", clock.now(), 0.1
    )
    await w.manager.on_check(CheckEvent(
        check="docs", key="docs", title="docs is down", result=result, state=AlertState.DOWN,
        previous=AlertState.UP, severity=severity, rule="r", last_good=good,
    ))  # fmt: skip
    await settle()
    await asyncio.sleep(0)
    assert pages
    for text, links in pages:
        assert ("Last known good: last green commit on main" in text) is in_page
        assert (links.get("Changes since last good") == "https://c") is in_page
    await stop(tasks)


async def test_a_removed_check_forgets_its_last_good(clock, metrics) -> None:
    store = MemoryStore()
    handler, _ = handler_for(store, clock, metrics)
    await handler(npm_check(), npm_result(clock, "0.85.48", ok=True))
    assert "lastgood:npm-winglang" in store.kv
    await handler.forget(["npm-winglang"])
    assert "lastgood:npm-winglang" not in store.kv
    assert "npm-winglang" not in handler.last_good
