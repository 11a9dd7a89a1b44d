"""Secrets planted in every place the config can hold one never reach a surface: logs in
both formats (tracebacks included), the API, the status page, CLI output, notifier
payloads, post-mortems; the state files are private."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.config.loader import load_config
from monitor.core import logs
from monitor.core import redact as redaction
from monitor.core.alertstate import CheckState
from monitor.core.logs import configure_logging
from monitor.core.model import Incident, IncidentStatus, Observation
from monitor.core.redact import redact_text, redact_url, remember_config, secret_name
from monitor.incidents.manager import IncidentManager
from monitor.incidents.postmortem import render_postmortem
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.store.sqlite import SqliteStore
from monitor.web.api import IncidentApi, build_app
from tests.fakes import FakeClock, MemoryStore
from tests.proc import Daemon, run_cli, wait_for

API_TOKEN = "APITOKEN-7f3a9e"
URL_PASSWORD = "URLPASS-91bd2c"
QUERY_TOKEN = "QUERYTOKEN-5c2e8"
HEADER_KEY = "HEADERKEY-0d4f6"
HOOK_PATH = "HOOKPATH-3e8a17"
HOOK_SECRET = "HOOKSECRET-aa11f"
SLACK_PATH = "SLACKPATH-b7c6d"
PD_KEY = "PDKEY-c0ffee42"
NPM_TOKEN = "NPMTOKEN-5a5a5a"
GITHUB_TOKEN = "GHTOKEN-6b6b6b"
SECRETS = (API_TOKEN, URL_PASSWORD, QUERY_TOKEN, HEADER_KEY, HOOK_PATH, HOOK_SECRET,
           SLACK_PATH, PD_KEY, NPM_TOKEN, GITHUB_TOKEN)  # fmt: skip


def leaked(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    return [s for s in SECRETS if s in text and s not in allowed]


_saved: list[tuple[Any, list[Any]]] = []


def captured_logs(as_json: bool) -> io.StringIO:
    """Points the log (cached loggers included) at a buffer; `restore_logs()` undoes it."""
    _saved.append((logs._STREAM.target, list(logs._PROCESSORS)))
    buffer = io.StringIO()
    configure_logging(json=as_json, stream=buffer)
    return buffer


def restore_logs() -> None:
    target, processors = _saved.pop()
    if processors:
        logs._STREAM.target = target
        logs._PROCESSORS[:] = processors
    else:  # never configured before: loggers cached meanwhile get the console format
        configure_logging(json=False, stream=sys.stdout)
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def fresh_redactor() -> Iterator[None]:
    redaction.forget_all()
    yield
    redaction.forget_all()


class TestRedact:
    def test_urls(self) -> None:
        url = f"https://bot:{URL_PASSWORD}@example.org/a?x=1&api_key={QUERY_TOKEN}&Signature=s#t"
        assert redact_url(url) == "https://***@example.org/a?x=1&api_key=***&Signature=***#t"
        assert redact_url("http://[::1") == "***"  # unparseable: masked whole

    def test_text_pairs_and_headers(self) -> None:
        text = (
            f"GET http://u:{URL_PASSWORD}@h/?token={QUERY_TOKEN} failed; "
            f"Authorization: Bearer {API_TOKEN}; X-Api-Key={HEADER_KEY}; "
            f'{{"client_secret": "{HOOK_SECRET}"}}; author: alice; assignee=bob'
        )
        clean = redact_text(text)
        assert leaked(clean) == []
        assert "author: alice" in clean
        assert "assignee=bob" in clean

    def test_secret_names(self) -> None:
        for name in ("token", "X-Api-Key", "apiKey", "access_token", "Authorization",
                     "passwd", "sig", "X-Amz-Signature", "sessionid", "Cookie", "routing_key"):  # fmt: skip
            assert secret_name(name), name
        for name in ("key", "dedup_key", "author", "assignee", "signal", "design", "state"):
            assert not secret_name(name), name

    def test_config_secrets_are_remembered(self, tmp_path: Path, monkeypatch) -> None:
        path = write_config(tmp_path, "http://127.0.0.1:9", monkeypatch)
        remember_config(load_config(str(path)))
        planted = [os.environ[n] for n in os.environ if n.startswith("T_")]
        for secret in [*planted, URL_PASSWORD, QUERY_TOKEN]:
            assert redact_text(f"… {secret} …") == "… *** …", secret


def write_config(tmp_path: Path, base: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with a secret in every place one can be configured."""
    monkeypatch.setenv("T_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("T_HOOK_URL", f"{base}/hook/{HOOK_PATH}")
    monkeypatch.setenv("T_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("T_SLACK_URL", f"{base}/slack/{SLACK_PATH}")
    monkeypatch.setenv("T_PD_KEY", PD_KEY)
    monkeypatch.setenv("T_HEADER_KEY", HEADER_KEY)
    monkeypatch.setenv("T_NPM_TOKEN", NPM_TOKEN)
    monkeypatch.setenv("T_GITHUB_TOKEN", GITHUB_TOKEN)
    site = base.replace("http://", f"http://bot:{URL_PASSWORD}@") + f"/site?api_key={QUERY_TOKEN}"
    path = tmp_path / "m.yaml"
    path.write_text(f"""
defaults: {{interval: 1s, timeout: 2s, failure_threshold: 1, success_threshold: 1}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 2s, state_dir: "{tmp_path}/state"}}
api: {{token: "${{T_API_TOKEN}}"}}
checks:
  - name: site
    kind: http
    url: "{site}"
    headers: {{X-Api-Key: "${{T_HEADER_KEY}}"}}
  - {{name: npm-wing, kind: npm, package: winglang, registry: "{base}/npm", token: "${{T_NPM_TOKEN}}",
     interval: 1s}}
  - {{name: ci, kind: github_actions, repo: o/r, workflow: b.yml, api_url: "{base}/gh",
     token: "${{T_GITHUB_TOKEN}}", interval: 1s}}
severity:
  - {{match: {{checks: [site]}}, severity: P1}}
notifiers:
  slack: {{type: slack, url: "${{T_SLACK_URL}}"}}
  pd: {{type: pagerduty, routing_key: "${{T_PD_KEY}}", url: "{base}/pd"}}
  hook: {{type: webhook, url: "${{T_HOOK_URL}}", secret: "${{T_HOOK_SECRET}}"}}
escalation:
  channel: slack
  policies:
    default:
      steps: [{{post: slack}}, {{post: hook}}, {{post: pd}}]
""")
    return path


class Site:
    def __init__(self) -> None:
        self.status = 200
        self.headers: list[str] = []
        self.bodies: dict[str, list[str]] = {}

    async def site(self, request: web.Request) -> web.Response:
        self.headers.append(request.headers.get("X-Api-Key", ""))
        return web.Response(status=self.status, text="Wing")

    async def other(self, request: web.Request) -> web.Response:
        self.headers.append(request.headers.get("Authorization", ""))
        return web.json_response({"message": "Not Found"}, status=404)

    async def receive(self, request: web.Request) -> web.Response:
        kind = request.path.split("/")[1]
        self.bodies.setdefault(kind, []).append(await request.text())
        if kind == "pd":
            return web.json_response({"status": "success"}, status=202)
        return web.Response(text="ok")


async def fetch(port: int, path: str) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}{path}") as r,
    ):
        return await r.text()


@pytest.mark.slow
async def test_no_secret_on_any_surface_of_the_daemon(
    aiohttp_server, tmp_path: Path, monkeypatch
) -> None:
    site = Site()
    app = web.Application()
    app.router.add_get("/site", site.site)
    app.router.add_get("/{tail:.*}", site.other)
    app.router.add_post("/{tail:.*}", site.receive)
    server = await aiohttp_server(app)
    config = write_config(tmp_path, f"http://127.0.0.1:{server.port}", monkeypatch)
    daemon = await Daemon(config).start()
    try:
        await daemon.event("check_up", check="site")
        site.status = 500
        opened = await daemon.event("incident_opened", check="site")
        await wait_for(lambda: {"slack", "hook", "pd"} <= set(site.bodies), what="every page")
        for check in ("npm-wing", "ci"):  # they fail, saying why, without their tokens
            await daemon.event("check_down", check=check)
        assert HEADER_KEY in site.headers  # the secrets are used where they belong
        assert any(NPM_TOKEN in h for h in site.headers)
        assert any(GITHUB_TOKEN in h for h in site.headers)
        # Recovered, with a public note that has a secret pasted into it by mistake: the
        # public history and the badges show neither it nor any other.
        site.status = 200
        await daemon.event("incident_resolved", incident_id=opened["incident_id"])
        async with (
            aiohttp.ClientSession() as s,
            s.put(
                f"http://127.0.0.1:{daemon.port}/api/incidents/{opened['incident_id']}/public-note",
                json={"note": f"fixed; the key was {HOOK_SECRET}", "actor": "ana"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as put,
        ):
            assert put.status == 200, await put.text()
        surfaces = {
            path: await fetch(daemon.port, path)
            for path in ("/api/incidents", f"/api/incidents/{opened['incident_id']}",
                         "/api/status", "/", "/api/silences", "/metrics",
                         "/api/incidents/history", "/badge/site/status.svg",
                         "/badge/site/uptime/24h.svg", "/badge/group/other/status.svg",
                         "/badge/group/other/uptime/90d.svg", "/badge/npm-wing/status.svg",
                         "/assets/site", "/assets/npm-wing", "/assets/ci",
                         "/?q=site&state=failing", f"/assets/{URL_PASSWORD}",
                         "/api/assets/site/history")
        }  # fmt: skip
        [public] = json.loads(surfaces["/api/incidents/history"])["incidents"]
        assert public["summary"] == "fixed; the key was ***"
        assert "<svg" in surfaces["/badge/site/status.svg"]
        incident = json.loads(surfaces[f"/api/incidents/{opened['incident_id']}"])["incident"]
        final_url = incident["last_good"]["values"]["final_url"]
        assert final_url.endswith("/site?api_key=***")
        assert final_url.startswith("http://127.0.0.1:")  # userinfo is never reported
        for path, text in surfaces.items():
            assert leaked(text) == [], path
        for kind, bodies in site.bodies.items():
            # PagerDuty's Events API takes the routing key in the body: that one only.
            allowed = (PD_KEY,) if kind == "pd" else ()
            for body in bodies:
                assert leaked(body, allowed) == [], kind
        _code, out, err = await run_cli("check", "--json", "-c", str(config))
        results = json.loads(out)  # stdout is JSON only
        assert results[0]["details"]["url"].startswith("http://***@127.0.0.1")
        assert leaked(out + err) == []
    finally:
        await daemon.kill()
    logs = "\n".join(json.dumps(e) for e in daemon.events) + "\n".join(daemon.other)
    assert daemon.find("incident_opened")
    assert leaked(logs) == []


class Boom:
    """A check whose run crashes with secrets in its locals and its message."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def run(self) -> Observation:
        password = URL_PASSWORD  # frame locals: never printed
        marker = "LOCAL" + "-MARKER"
        raise RuntimeError(f"cannot fetch {self.url} (as bot:{password}, {len(marker)})")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
async def test_a_crashing_check_logs_no_secret_and_no_locals(
    as_json: bool, tmp_path: Path, monkeypatch
) -> None:
    from monitor.checks.http.check import HttpCheck

    path = write_config(tmp_path, "http://127.0.0.1:9", monkeypatch)
    config = load_config(str(path))
    remember_config(config)
    buffer = captured_logs(as_json)
    try:

        async def crash(self: HttpCheck) -> Observation:
            return await Boom(self.config.url).run()

        monkeypatch.setattr(HttpCheck, "run", crash)
        from monitor.app import run_checks_once

        results = await run_checks_once(config, config.enabled_checks)
    finally:
        restore_logs()
    text = buffer.getvalue()
    assert "check_crashed" in text
    assert "RuntimeError" in text
    assert leaked(text) == []
    assert "LOCAL-MARKER" not in text  # no frame locals
    assert results[0].failure is not None


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
async def test_a_500_logs_no_token(
    as_json: bool, clock: FakeClock, aiohttp_client, monkeypatch
) -> None:
    redaction.remember([API_TOKEN])
    buffer = captured_logs(as_json)
    try:
        store = MemoryStore()
        manager = IncidentManager(store, clock, Metrics(CollectorRegistry()), cooldown=timedelta(0))
        await manager.load()
        book = SilenceBook(store, clock)

        async def boom(*_args: Any, **_kw: Any) -> None:
            token = API_TOKEN  # frame locals: never printed
            marker = "LOCAL" + "-MARKER"
            raise RuntimeError(f"store failed for {token} {len(marker)}")

        monkeypatch.setattr(manager, "drill", boom)
        client = await aiohttp_client(
            build_app(
                CollectorRegistry(), lambda: True, IncidentApi(manager, book, clock, API_TOKEN)
            )
        )
        resp = await client.post(
            "/api/drills", json={}, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert resp.status == 500
        assert leaked(await resp.text()) == []
    finally:
        restore_logs()
    text = buffer.getvalue()
    assert "api_request_failed" in text
    assert "RuntimeError" in text
    assert leaked(text) == []
    assert '"locals"' not in text
    assert "LOCAL-MARKER" not in text


def test_postmortem_is_redacted(clock: FakeClock) -> None:
    now = clock.now()
    incident = Incident(
        1, "site", f"site down: http://bot:{URL_PASSWORD}@x/?token={QUERY_TOKEN}",
        IncidentStatus.RESOLVED, None, now, now, message=f"GET https://x/?sig={QUERY_TOKEN}",
    )  # fmt: skip
    assert leaked(render_postmortem(incident, [])) == []


async def test_check_json_stdout_is_json_when_a_check_crashes(tmp_path: Path, monkeypatch) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", monkeypatch)
    script = (
        "import sys, monitor.checks.http.check as h\n"
        "async def boom(self):\n"
        "    print('noise from a check')\n"
        "    raise RuntimeError(f'cannot fetch {self.config.url}')\n"
        "h.HttpCheck.run = boom\n"
        "from monitor.cli.main import main\n"
        f"sys.exit(main(['check', '--json', '-c', {str(path)!r}]))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    results = json.loads(out)
    assert results[0]["failure"] == "unexpected"
    assert "check_crashed" in err.decode()
    assert "noise from a check" in err.decode()
    assert leaked(out.decode() + err.decode()) == []


async def test_state_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    state = tmp_path / "state" / "nested"
    try:
        store = SqliteStore(state / "monitor.sqlite3")
        await store.open()
        await store.save_check_state("site", CheckState())
        await store.backup(tmp_path / "backups" / "copy.sqlite3")
        files = [*state.iterdir(), tmp_path / "backups" / "copy.sqlite3"]
        assert {f.name for f in files} >= {"monitor.sqlite3-wal", "monitor.sqlite3-shm"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        await store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


async def test_cli_errors_are_redacted() -> None:
    from monitor.cli.client import ApiClient, ApiError

    client = ApiClient(f"http://bot:{URL_PASSWORD}@127.0.0.1:1/?token={QUERY_TOKEN}", None, 2)
    with pytest.raises(ApiError) as caught:
        await client.get("/api/incidents")
    assert "cannot reach the daemon" in str(caught.value)
    assert leaked(str(caught.value)) == []
