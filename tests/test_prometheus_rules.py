"""deploy/prometheus/rules.yml: the alert rules for the monitor itself pass `promtool check
rules`, their unit tests (`rules_test.yml`) pass `promtool test rules`, and they name only
series the daemon exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (Debian package 'prometheus'; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_rules_check() -> None:
    done = run("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 17 rules found" in done.stdout


def test_rules_unit_tests_pass() -> None:
    done = run("test", "rules", "rules_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    # The unit tests can fail: a MonitorDown that waits too long misses its expected alert.
    rules = (PROMETHEUS / "rules.yml").read_text()
    wrong = rules.replace("== 0\n        for: 2m", "== 0\n        for: 10m", 1)
    assert wrong != rules
    (tmp_path / "rules.yml").write_text(wrong)
    shutil.copy(PROMETHEUS / "rules_test.yml", tmp_path / "rules_test.yml")
    done = run("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "MonitorDown" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("right", "wrong", "alert"),
    [
        ('{window="1h"} > 14.4', '{window="1h"} > 40', "AssetSloBurnFast"),
        ('{window="30m"} > 6', '{window="30m"} > 10', "AssetSloBurnFast"),
        ('{window="6h"} > 1\n', '{window="1h"} > 1\n', "AssetSloBurnSlow"),
    ],
)
def test_slo_burn_unit_tests_catch_a_wrong_threshold(
    tmp_path: Path, right: str, wrong: str, alert: str
) -> None:
    rules = (PROMETHEUS / "rules.yml").read_text()
    changed = rules.replace(right, wrong, 1)
    assert changed != rules
    (tmp_path / "rules.yml").write_text(changed)
    shutil.copy(PROMETHEUS / "rules_test.yml", tmp_path / "rules_test.yml")
    done = run("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert alert in done.stdout + done.stderr


def test_rules_name_only_series_the_daemon_exports() -> None:
    rules = (PROMETHEUS / "rules.yml").read_text()
    used = {re.sub(r"_bucket$", "", m) for m in re.findall(r"\bmonitor_[a-z_]+", rules)}
    assert used >= {
        "monitor_healthy", "monitor_heartbeat_pings_total", "monitor_scheduler_lag_seconds",
        "monitor_outbox_pending", "monitor_outbox_oldest_pending_age_seconds",
        "monitor_check_alert_state", "monitor_config_last_reload_successful",
        "monitor_replicas_live", "monitor_config_consistent", "monitor_slo_burn_rate",
    }  # fmt: skip
    table = OPERATIONS.read_text()
    missing = sorted(name for name in used if f"`{name}`" not in table)
    assert missing == [], f"not in the metrics table of docs/operations.md: {missing}"
