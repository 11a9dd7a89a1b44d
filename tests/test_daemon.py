"""`monitor run` as a real process: metrics, state-change logs, reload and shutdown."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.proc import Daemon, run_cli, wait_for

pytestmark = pytest.mark.slow


class Target:
    """A local site whose health the test flips."""

    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        self.gate: asyncio.Event | None = None  # when set, requests wait for it

    async def handle(self, _request: web.Request) -> web.Response:
        self.hits += 1
        if self.gate is not None:
            await self.gate.wait()
        return web.Response(status=self.status, text="Wing")


@pytest.fixture
async def target(aiohttp_server) -> tuple[Target, str]:
    t = Target()
    app = web.Application()
    app.router.add_get("/{tail:.*}", t.handle)
    server = await aiohttp_server(app)
    return t, f"http://127.0.0.1:{server.port}"


def write_config(path: Path, base: str, extra: str = "", interval: str = "1s") -> Path:
    path.write_text(
        f"""
defaults: {{interval: {interval}, timeout: 2s, failure_threshold: 2, success_threshold: 2}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 5s, state_dir: "{path.parent}/state"}}
checks:
  - {{name: site, kind: http, url: "{base}/site", tags: [web]}}
{extra}"""
    )
    return path


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


@pytest.fixture
async def daemon_for(tmp_path: Path):
    started: list[Daemon] = []

    async def start(config: Path) -> Daemon:
        d = await Daemon(config).start()
        started.append(d)
        return d

    yield start
    for d in started:
        await d.kill()


async def test_probes_logs_transitions_and_serves_metrics(target, tmp_path, daemon_for) -> None:
    t, base = target
    d = await daemon_for(write_config(tmp_path / "m.yaml", base))
    assert (await get(d.port, "/healthz"))[0] == 200
    await wait_for(lambda: d.find("check_up", check="site"), what="check_up")
    assert (await get(d.port, "/readyz"))[0] == 200

    t.status = 503
    down = await d.event("check_down", check="site")
    assert down["failure"] == "http_status"
    assert down["message"] == "expected status 2xx, got 503 Service Unavailable"
    t.status = 200
    recovered = await d.event("check_recovered", check="site")
    assert recovered["previous"] == "down"
    # One line per state change, not one per probe.
    assert len(d.find("check_down")) == 1
    assert t.hits >= 5

    status, text = await get(d.port, "/metrics")
    assert status == 200
    assert 'monitor_check_up{check="site",kind="http"} 1.0' in text
    assert 'monitor_check_runs_total{check="site",kind="http",outcome="down"}' in text
    assert 'monitor_check_alert_state{check="site",kind="http",state="up"} 1.0' in text
    assert "monitor_scheduler_lag_seconds_bucket" in text
    # By default run timings are histograms per kind; per check only the lean series.
    assert 'monitor_http_phase_seconds_count{kind="http",phase="connect"}' in text
    assert 'monitor_check_duration_seconds_count{kind="http"}' in text
    assert 'monitor_check_last_duration_seconds{check="site",kind="http"}' in text
    assert 'monitor_http_phase_seconds_count{check="site"' not in text
    assert "monitor_config_last_reload_successful 1.0" in text
    assert "monitor_build_info{" in text
    assert base not in text  # labels never carry URLs

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_checks_of_long_intervals_have_results_within_the_start_window(
    target, tmp_path, daemon_for
) -> None:
    t, base = target
    extra = "".join(f'  - {{name: pkg{i}, kind: http, url: "{base}/pkg{i}"}}\n' for i in range(4))
    config = write_config(tmp_path / "m.yaml", base, extra, interval="10m")
    loop = asyncio.get_running_loop()
    started = loop.time()
    d = await daemon_for(config)
    # Spread over the interval, first runs would take up to 10 minutes; they come within
    # the 10 s start window (plus start-up).
    await wait_for(lambda: t.hits >= 5, timeout=20, what="a first run of every check")
    assert loop.time() - started < 20
    _, text = await get(d.port, "/metrics")
    for name in ["site", *(f"pkg{i}" for i in range(4))]:
        assert f'monitor_check_runs_total{{check="{name}",kind="http",outcome="up"}} 1.0' in text


def promtool_lint(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("setting", "present", "absent"),
    [
        (
            "false",
            ['monitor_check_duration_seconds_count{kind="http"}'],
            [
                "monitor_http_phase_seconds_count{",
                'monitor_check_duration_seconds_count{check="site"',
            ],
        ),
        (
            "per_check",
            [
                'monitor_check_duration_seconds_count{check="site",kind="http"}',
                'monitor_http_phase_seconds_count{check="site",phase="connect"}',
                'monitor_scheduler_skipped_ticks_total{check="site"}',
            ],
            [
                'monitor_http_phase_seconds_count{kind="http"',
                'monitor_check_duration_seconds_count{kind="http"}',
            ],
        ),
    ],
)
async def test_phase_histograms_setting(
    target, tmp_path, daemon_for, setting: str, present: list[str], absent: list[str]
) -> None:
    t, base = target
    config = write_config(tmp_path / "m.yaml", base)
    config.write_text(
        config.read_text().replace(
            "shutdown_grace: 5s,", f"shutdown_grace: 5s, phase_histograms: {setting},"
        )
    )
    d = await daemon_for(config)
    await d.event("check_up", check="site")
    await wait_for(lambda: t.hits >= 2, what="a second run")
    _, text = await get(d.port, "/metrics")
    assert 'monitor_check_last_duration_seconds{check="site",kind="http"}' in text
    for line in present:
        assert line in text
    for line in absent:
        assert line not in text
    promtool_lint(text)


async def test_sighup_reload_keeps_unchanged_and_rejects_invalid(
    target, tmp_path, daemon_for
) -> None:
    _, base = target
    config = write_config(
        tmp_path / "m.yaml", base, '  - {name: other, kind: http, url: "' + base + '/o"}\n'
    )
    d = await daemon_for(config)
    await d.event("check_up", check="site")

    write_config(config, base, '  - {name: added, kind: http, url: "' + base + '/a"}\n')
    d.signal(signal.SIGHUP)
    reloaded = await d.event("config_reloaded")
    assert (reloaded["added"], reloaded["removed"], reloaded["unchanged"]) == (
        ["added"],
        ["other"],
        1,
    )
    await d.event("check_up", check="added")
    assert not d.find("check_up", check="site")[1:]  # kept its state: no second check_up

    config.write_text(config.read_text() + "  - {name: broken, kind: http}\n")
    d.signal(signal.SIGHUP)
    failed = await d.event("config_reload_failed")
    assert any("checks[2].url: missing required key 'url'" in e for e in failed["errors"])
    _, text = await get(d.port, "/metrics")
    assert "monitor_config_last_reload_successful 0.0" in text
    assert 'monitor_check_up{check="added",kind="http"} 1.0' in text  # still running
    runs_before = text.count("\n")
    assert runs_before > 0
    assert d.proc is not None
    assert d.proc.returncode is None


async def test_sigterm_waits_for_in_flight_then_exits_cleanly(target, tmp_path, daemon_for) -> None:
    t, base = target
    d = await daemon_for(write_config(tmp_path / "m.yaml", base, interval="1s"))
    await d.event("check_up", check="site")
    t.gate = asyncio.Event()
    hits = t.hits
    await wait_for(lambda: t.hits > hits, what="a probe in flight")
    d.signal(signal.SIGTERM)
    await asyncio.sleep(0)  # let the signal land; the probe is still held by the gate
    t.gate.set()
    assert await d.wait() == 0
    stopped = d.find("monitor_stopped")
    assert stopped
    assert stopped[0]["cancelled_runs"] == 0
    assert not [line for line in d.other if line.strip()], d.other  # no warnings, no tracebacks


async def test_sigterm_cancels_runs_past_the_grace(target, tmp_path, daemon_for) -> None:
    t, base = target
    config = tmp_path / "m.yaml"
    config.write_text(
        f"""
defaults: {{interval: 1s, timeout: 30s}}
daemon: {{listen: "127.0.0.1:0", shutdown_grace: 200ms, state_dir: "{tmp_path}/state"}}
checks: [{{name: site, kind: http, url: "{base}/"}}]
"""
    )
    t.gate = asyncio.Event()  # never set: the probe hangs
    d = await daemon_for(config)
    await wait_for(lambda: t.hits > 0, what="a probe in flight")
    d.signal(signal.SIGTERM)
    assert await d.wait(timeout=10) == 0
    assert d.find("monitor_stopped")[0]["cancelled_runs"] == 1
    assert not [line for line in d.other if line.strip()], d.other
    t.gate.set()


async def test_incident_survives_sigkill_and_is_handled_through_the_cli(
    target, tmp_path, daemon_for
) -> None:
    t, base = target
    config = write_config(
        tmp_path / "m.yaml", base,
        "api: {token: t0ken}\n"
        "severity:\n"
        "  - {name: site-down, match: {checks: [site], states: [down]}, severity: P1}\n",
    )  # fmt: skip
    t.status = 503
    first = await daemon_for(config)
    opened = await first.event("incident_opened", check="site")
    assert opened["severity"] == "P1"
    _, text = await get(first.port, "/api/incidents")
    incidents = json.loads(text)["incidents"]
    assert [(i["id"], i["status"], i["severity"]) for i in incidents] == [
        (opened["incident_id"], "triggered", "P1")
    ]
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    await first.wait()

    second = await daemon_for(config)
    hits = t.hits
    await wait_for(lambda: t.hits >= hits + 3, what="three probes after the restart")
    _, text = await get(second.port, "/api/incidents?state=triggered,acknowledged,resolved")
    after = json.loads(text)["incidents"]
    assert [(i["id"], i["status"]) for i in after] == [(opened["incident_id"], "triggered")]
    assert not second.find("incident_opened")  # nothing opened again
    assert not second.find("check_down")  # the check remembered it was down

    api = f"http://127.0.0.1:{second.port}"
    code, out, err = await run_cli(
        "ack", str(opened["incident_id"]), "--api", api, "--token", "t0ken", "--as", "alice"
    )
    assert code == 0, err
    assert out.strip() == f"#{opened['incident_id']} P1 acknowledged: site is down"
    code, out, err = await run_cli("incidents", "--api", api, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["assignee"] == "alice"

    t.status = 200
    await second.event("incident_resolved", incident_id=opened["incident_id"])
    code, out, _ = await run_cli("incident", str(opened["incident_id"]), "--api", api)
    events = [line.split()[3] for line in out.splitlines() if line.startswith("  20")]
    assert events == ["opened", "acknowledged", "recovered", "resolved"], out
    code, out, _ = await run_cli("postmortem", str(opened["incident_id"]), "--api", api)
    assert code == 0
    assert out.startswith("# Post-mortem: site is down\n")
    assert "- **Severity:** P1 (rule `site-down`)" in out
    code, _, err = await run_cli(
        "resolve", str(opened["incident_id"]), "--api", api, "--token", "t0ken"
    )
    assert (code, err.strip()) == (
        1,
        f"error: 409: incident {opened['incident_id']} is already resolved",
    )


async def test_a_failing_streak_survives_kill_9(target, tmp_path, daemon_for) -> None:
    # failure_threshold 3: two failed probes, kill -9, and the first failed probe after the
    # restart is the third in a row: the incident opens then, not three probes later.
    t, base = target
    config = write_config(
        tmp_path / "m.yaml", base,
        "severity:\n  - {name: site-down, match: {checks: [site]}, severity: P1}\n",
        interval="2s",  # room between probes for the kill and for reading the log
    )  # fmt: skip
    config.write_text(config.read_text().replace("failure_threshold: 2", "failure_threshold: 3"))
    db = tmp_path / "state" / "monitor.sqlite3"

    def downs() -> int:
        if not db.exists():
            return 0
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            try:
                row = conn.execute("SELECT downs FROM check_states WHERE name = 'site'").fetchone()
            except sqlite3.OperationalError:  # the schema is not there yet
                return 0
        return int(row[0]) if row else 0

    t.status = 503
    first = await daemon_for(config)
    await wait_for(lambda: downs() >= 2, what="two failed probes stored")
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    await first.wait()
    assert not first.find("incident_opened")
    hits = t.hits
    second = await daemon_for(config)
    await second.event("incident_opened", check="site")
    assert t.hits == hits + 1
