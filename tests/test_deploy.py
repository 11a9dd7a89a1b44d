"""deploy/: the systemd unit verifies, the scrape config loads, the image runs the daemon as PID 1,
the fleet's drop-in verifies with the unit and its compose file has what a fleet needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze, monitor = shutil.which("systemd-analyze"), shutil.which("monitor")
    if analyze is None or monitor is None:
        pytest.skip("needs systemd-analyze (Debian package 'systemd') and an installed `monitor`")
    unit = (DEPLOY / "systemd" / "monitor.service").read_text()
    # verify also checks that ExecStart's binary exists: point it at this install.
    (tmp_path / "monitor.service").write_text(unit.replace("/usr/local/bin/monitor", monitor))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "monitor.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines() if "monitor.service" in line]
    assert problems == []


def test_systemd_unit_is_hardened() -> None:
    unit = (DEPLOY / "systemd" / "monitor.service").read_text()
    for line in (
        "DynamicUser=yes", "StateDirectory=monitor", "ProtectSystem=strict", "NoNewPrivileges=yes",
        "ExecStartPre=/usr/local/bin/monitor validate", "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
    ):  # fmt: skip
        assert f"\n{line}\n" in unit
    stop = re.search(r"\nTimeoutStopSec=(\d+)s\n", unit)
    assert stop is not None
    assert int(stop.group(1)) > 10  # above the default daemon.shutdown_grace


def test_scrape_config_loads() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; .ci/run installs it)")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "scrape.yml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_container_image_file() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    assert re.search(r"^USER monitor$", text, re.M)
    assert 'ENTRYPOINT ["monitor", "run"]' in text  # exec form: the daemon gets SIGTERM
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", text, re.M)


def _expand(analyze: str, item: str, seen: set[str]) -> set[str]:
    """A syscall filter item as the set of system calls it names (groups recursively)."""
    if not item.startswith("@"):
        return {item}
    if item in seen:
        return set()
    seen.add(item)
    done = subprocess.run(
        [analyze, "syscall-filter", item], capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            names |= _expand(analyze, word, seen)
    return names


def test_unit_lets_the_daemon_raise_its_open_file_limit() -> None:
    """systemd's semantics: the first SystemCallFilter= line is the allow list, a later `~`
    line removes from it, a later plain line adds to it. setrlimit and prlimit64 (what
    Python's resource.setrlimit makes) must survive, or the call is answered by SIGSYS."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (Debian package 'systemd')")
    unit = (DEPLOY / "systemd" / "monitor.service").read_text()
    assert re.search(r"^LimitNOFILE=(\d+)$", unit, re.M)
    assert int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M).group(1)) >= 65536  # type: ignore[union-attr]
    assert re.search(r"^SystemCallErrorNumber=EPERM$", unit, re.M)  # refusals are errors
    allowed: set[str] | None = None
    for line in re.findall(r"^SystemCallFilter=(.*)$", unit, re.M):
        deny = line.startswith("~")
        names: set[str] = set()
        for item in line.lstrip("~").split():
            names |= _expand(analyze, item, set())
        if allowed is None:
            assert not deny
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    assert allowed is not None
    assert {"setrlimit", "prlimit64"} <= allowed
    assert not {"mount", "reboot", "setuid", "init_module"} & allowed  # still sandboxed


def test_fleet_dropin_verifies_with_the_unit(tmp_path: Path) -> None:
    """deploy/fleet: the drop-in beside monitor.service, as on every host of a fleet."""
    analyze, monitor = shutil.which("systemd-analyze"), shutil.which("monitor")
    if analyze is None or monitor is None:
        pytest.skip("needs systemd-analyze (Debian package 'systemd') and an installed `monitor`")
    unit = (DEPLOY / "systemd" / "monitor.service").read_text()
    (tmp_path / "monitor.service").write_text(unit.replace("/usr/local/bin/monitor", monitor))
    (tmp_path / "monitor.service.d").mkdir()
    dropin = (DEPLOY / "fleet" / "monitor-fleet.conf").read_text()
    (tmp_path / "monitor.service.d" / "fleet.conf").write_text(dropin)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "monitor.service")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},  # drop-ins beside the unit
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "monitor.service" in line] == []


def test_fleet_database_url_only_in_the_environment_file() -> None:
    dropin = (DEPLOY / "fleet" / "monitor-fleet.conf").read_text()
    # Required, not "-": a host without it must not start alone on SQLite.
    assert re.search(r"^EnvironmentFile=/etc/monitor/database\.env$", dropin, re.M)
    example = (DEPLOY / "fleet" / "database.env.example").read_text()
    assert re.search(r"^MONITOR_DATABASE_URL=postgresql://", example, re.M)
    for path in (*DEPLOY.rglob("*.service"), *DEPLOY.rglob("*.conf"), DEPLOY / "fleet" / "compose.yaml"):  # fmt: skip
        text = path.read_text()
        assert not re.search(r"postgres(ql)?://[^$\s]*:[^$@\s{]+@", text), path  # no password
    # The shipped config reads the URL from there, and is SQLite without it.
    config = (DEPLOY.parent / "monitors.yaml").read_text()
    assert re.search(r"^  store: \$\{MONITOR_DATABASE_URL:-\}", config, re.M)


def test_fleet_compose_file() -> None:
    doc = yaml.safe_load((DEPLOY / "fleet" / "compose.yaml").read_text())
    services = doc["services"]
    replicas = sorted(name for name in services if name != "postgres")
    assert replicas == ["monitor-1", "monitor-2", "monitor-3"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    ports = set()
    for name in replicas:
        s = services[name]
        assert s["build"] == {"context": "../..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / "fleet" / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        assert s["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        env = s["environment"]
        assert env["MONITOR_DATABASE_URL"].startswith("postgresql://monitor:${POSTGRES_PASSWORD")
        assert env["MONITOR_DATABASE_URL"].endswith("@postgres:5432/monitor")
        assert env["MONITOR_LISTEN"] == "0.0.0.0:9180"
        # The same config file for every replica.
        assert s["volumes"] == ["../../monitors.yaml:/etc/monitor/monitors.yaml:ro"]
        assert (DEPLOY / "fleet" / "../../monitors.yaml").is_file()
        grace = re.fullmatch(r"(\d+)s", s["stop_grace_period"])
        assert grace is not None
        assert int(grace.group(1)) > 10
        ports |= set(s["ports"])
    assert len(ports) == 3
