"""`monitor check` end to end: the real command against real local servers."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from tests.proc import run_cli


async def test_check_json_reports_each_case(aiohttp_server, tmp_path: Path) -> None:
    never = asyncio.Event()

    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="<title>Wing</title>")

    async def error(_r: web.Request) -> web.Response:
        return web.Response(status=500)

    async def hang(_r: web.Request) -> web.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(0.3)  # the provocation: slower than max_latency below
        return web.Response(text="Wing")

    app = web.Application()
    for path, handler in {"/ok": ok, "/error": error, "/hang": hang, "/slow": slow}.items():
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"

    ca = trustme.CA()
    now = datetime.now(UTC)
    leaf = ca.issue_cert(
        "localhost", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    tls_app = web.Application()
    tls_app.router.add_get("/", ok)
    tls_server = await aiohttp_server(tls_app, ssl=ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
        config = tmp_path / "monitors.yaml"
        config.write_text(
            f"""
defaults: {{timeout: 2s}}
checks:
  - {{name: keyword, kind: http, url: "{base}/ok", expect: {{body_contains: [Wing]}}}}
  - {{name: server-error, kind: http, url: "{base}/error"}}
  - {{name: keyword-missing, kind: http, url: "{base}/ok", expect: {{body_contains: [Playground]}}}}
  - {{name: timeout, kind: http, url: "{base}/hang", timeout: 200ms}}
  - {{name: refused, kind: http, url: "http://127.0.0.1:{refused_port}/"}}
  - {{name: expired-cert, kind: http, url: "https://localhost:{tls_server.port}/", tls_ca_file: "{ca_file}"}}
  - {{name: slow, kind: http, url: "{base}/slow", max_latency: 100ms}}
  - {{name: disabled, kind: http, url: "{base}/error", enabled: false}}
"""
        )
        code, out, err = await run_cli("check", "-c", str(config), "--json")
    assert code == 1, err
    results = {r["check"]: r for r in json.loads(out)}
    verdicts = {name: (r["ok"], r["failure"]) for name, r in results.items()}
    assert verdicts == {
        "keyword": (True, None),
        "server-error": (False, "http_status"),
        "keyword-missing": (False, "content"),
        "timeout": (False, "timeout"),
        "refused": (False, "connect"),
        "expired-cert": (False, "tls"),
        "slow": (False, "slow"),
    }
    for r in results.values():
        assert {"check", "kind", "ok", "failure", "message", "duration_s"} <= set(r)
        assert r["kind"] == "http"
        assert r["message"]
    assert "certificate has expired" in results["expired-cert"]["message"]
    assert results["slow"]["outcome"] == "degraded"


async def test_check_named_and_table(aiohttp_server, tmp_path: Path) -> None:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="Wing")

    app = web.Application()
    app.router.add_get("/", ok)
    server = await aiohttp_server(app)
    config = tmp_path / "monitors.yaml"
    config.write_text(
        f"checks:\n"
        f"  - {{name: good, kind: http, url: 'http://127.0.0.1:{server.port}/'}}\n"
        f"  - {{name: bad, kind: http, url: 'http://127.0.0.1:{server.port}/missing'}}\n"
    )
    code, out, _ = await run_cli("check", "-c", str(config), "good")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "KIND", "RESULT", "TIME", "MESSAGE"]
    assert lines[1].split()[:3] == ["good", "http", "ok"]
    assert "1 ok, 0 failed" in out
    code, out, _ = await run_cli("check", "-c", str(config))
    assert code == 1
    assert "down: http_status" in out
    assert "expected status 2xx, got 404 Not Found" in out
    code, _, err = await run_cli("check", "-c", str(config), "nope")
    assert (code, err.strip()) == (2, "unknown check(s): nope")


async def test_help_everywhere() -> None:
    for args in ([], ["run"], ["check"], ["validate"], ["schema"]):
        code, out, _ = await run_cli(*args, "--help")
        assert code == 0
        assert out.startswith("usage: monitor")


async def test_explain_on_the_reference_config() -> None:
    root = Path(__file__).resolve().parent.parent
    code, out, err = await run_cli(
        "explain", "-c", str(root / "monitors.yaml"), "docs", "--failure", "http_status"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == (
        "  severity[0] cannot-install: no match: kind 'http' is not one of npm; "
        "failure 'http_status' is not one of not_found, tag_missing, tarball, integrity"
    )
    assert "→ P1 (rule sites-down)" in lines
    code, out, _ = await run_cli(
        "explain", "-c", str(root / "monitors.yaml"), "npm-winglang", "--failure", "tarball"
    )
    assert "→ P0 (rule cannot-install, resolved by hand)" in out.splitlines()
    code, _, err = await run_cli(
        "explain", "-c", str(root / "monitors.yaml"), "docs", "--failure", "bogus"
    )
    assert code == 2
    assert err.startswith("unknown failure kind 'bogus'")


EXPLAIN = """
checks:
  - {name: build, kind: github_actions, repo: o/r, workflow: ci.yml, max_age: 1d}
severity:
  - {name: build-stale, match: {checks: [build], states: [degraded]}, severity: P2}
  - {name: build-down, match: {checks: [build], states: [down]}, severity: P1}
notifiers:
  chat: {type: console}
  pager: {type: console}
oncall:
  people: [{name: alice}, {name: bob}]
  rotations: [{name: all, window: "00:00-24:00", members: [alice, bob], start: 2026-11-02}]
escalation:
  channel: chat
  severities: {P2: fyi}
  policies:
    default: {steps: [{post: chat}, {page: primary}, {wait: 10m}, {page: secondary}]}
    fyi: {steps: [{post: chat}]}
"""


async def test_explain_uses_the_failure_kinds_outcome_and_ends_with_who_is_paged(
    tmp_path: Path,
) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(EXPLAIN)
    at = "2026-11-03T12:00"
    # `stale` is a soft failure: the check is degraded, not down.
    code, out, err = await run_cli(
        "explain", "-c", str(config), "build", "--failure", "stale", "--at", at
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("build (github_actions) degraded with stale")
    assert lines[-3:] == [
        "→ P2 (rule build-stale)",
        "policy fyi: post to chat",
        "→ paged now: nobody (the policy pages no one)",
    ]
    code, out, _ = await run_cli(
        "explain", "-c", str(config), "build", "--failure", "stale", "--state", "down", "--at", at
    )
    assert out.splitlines()[-3:] == [
        "→ P1 (rule build-down)",
        "policy default: post to chat; page primary of all (alice); wait 10m; "
        "page secondary of all (bob)",
        "→ paged now via pager: alice (primary of all); after 10m unacknowledged: bob (secondary of all)",
    ]
    code, out, _ = await run_cli(
        "explain", "-c", str(config), "build", "--failure", "run_failed", "--at", at
    )
    assert out.splitlines()[0].startswith("build (github_actions) down with run_failed")


async def test_backup_copies_the_store(tmp_path: Path) -> None:
    from monitor.core.model import Incident, IncidentStatus, Severity
    from monitor.store.sqlite import SqliteStore, default_state_path

    state = tmp_path / "state"
    config = tmp_path / "m.yaml"
    config.write_text(f'daemon: {{state_dir: "{state}"}}\nchecks: []\n')
    live = SqliteStore(default_state_path(str(state)))
    await live.open()
    now = datetime.now(UTC)
    await live.create_incident(
        Incident(0, "k", "t", IncidentStatus.TRIGGERED, Severity.P1, now, now), []
    )
    code, _, err = await run_cli("backup", "-c", str(config), str(tmp_path / "copy.sqlite3"))
    await live.close()
    assert code == 0, err
    copy = SqliteStore(tmp_path / "copy.sqlite3")
    await copy.open()
    assert [i.key for i in await copy.list_incidents()] == ["k"]
    await copy.close()


async def test_oncall_on_the_reference_config() -> None:
    root = Path(__file__).resolve().parent.parent
    code, out, err = await run_cli(
        "oncall", "-c", str(root / "monitors.yaml"), "--at", "2026-11-09T16:00:00Z"
    )
    assert code == 0, err
    assert out.splitlines()[:3] == [
        "2026-11-09 16:00 UTC, rotation us:",
        "  primary:   Chriscbr",
        "  secondary: hasanaburayyan",
    ]
    code, out, _ = await run_cli(
        "oncall", "-c", str(root / "monitors.yaml"), "--coverage", "--weeks", "12"
    )
    assert code == 0
    assert out.startswith("24x7 covered for 12 week(s)")


async def test_oncall_coverage_gap_exits_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(
        "checks: []\n"
        "oncall:\n"
        "  people: [{name: a}]\n"
        "  rotations: [{name: day, window: '09:00-17:00', members: [a], start: 2026-01-05}]\n"
    )
    code, out, _ = await run_cli("oncall", "-c", str(config), "--coverage", "--weeks", "1")
    assert code == 1
    assert "gap(s) in on-call coverage" in out


async def test_runbook() -> None:
    root = Path(__file__).resolve().parent.parent
    code, out, _ = await run_cli("runbook", "-c", str(root / "monitors.yaml"), "npm-winglang")
    assert (code, out.strip()) == (
        0,
        "https://www.winglang.io/contributing/maintainers/runbooks/npm-package-cannot-be-installed",
    )
    code, _, err = await run_cli("runbook", "-c", str(root / "monitors.yaml"), "nope")
    assert (code, err.strip()) == (2, "unknown check: nope")
    doc = (root / "docs" / "runbooks" / "npm-package-cannot-be-installed.md").read_text()
    # the template's sections, in order
    sections = [line[3:] for line in doc.splitlines() if line.startswith("## ")]
    assert sections == [
        "Prerequisites",
        "Recognize",
        "Investigate",
        "Respond",
        "Verify",
        "Escalate",
    ]


def test_event_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli.local import event_loop_factory

    assert event_loop_factory("asyncio") is None
    with pytest.raises(ValueError, match="auto, uvloop or asyncio"):
        event_loop_factory("trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert event_loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop is not installed"):
        event_loop_factory("uvloop")
