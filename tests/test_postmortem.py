from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.model import Incident, IncidentSource, IncidentStatus, Severity, TimelineEntry
from monitor.incidents.postmortem import render_postmortem

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_render() -> None:
    incident = Incident(
        7, "npm-winglang", "npm-winglang is down", IncidentStatus.RESOLVED, Severity.P0, T0,
        T0 + timedelta(hours=2), check="npm-winglang", acknowledged_at=T0 + timedelta(minutes=12),
        resolved_at=T0 + timedelta(hours=1, minutes=40), assignee="alice", rule="cannot-install",
        failure="tarball", message="winglang@0.85.50: tarball HEAD answered 404",
    )  # fmt: skip
    timeline = [
        TimelineEntry(7, T0, "opened", "monitor", "P0 by rule cannot-install: tarball 404"),
        TimelineEntry(
            7, T0 + timedelta(minutes=12), "acknowledged", "alice", "acknowledged by alice"
        ),
        TimelineEntry(
            7, T0 + timedelta(minutes=30), "commented", "alice", "latest | reverted\nto 0.85.49"
        ),
        TimelineEntry(
            7, T0 + timedelta(hours=1, minutes=40), "resolved", "alice", "resolved by alice"
        ),
    ]
    text = render_postmortem(incident, timeline)
    lines = text.splitlines()
    assert lines[0] == "# Post-mortem: npm-winglang is down"
    assert "- **Severity:** P0 (rule `cannot-install`)" in lines
    assert "- **Impact window:** 2026-11-22 03:00 UTC → 2026-11-22 04:40 UTC" in lines
    assert "- **Time to acknowledge:** 12 min" in lines
    assert "- **Time to resolve:** 1 h 40 min" in lines
    assert "| 2026-11-22 03:30:00 | alice | commented: latest \\| reverted to 0.85.49 |" in lines
    assert [line for line in lines if line.startswith("## ")] == [
        "## Summary", "## Timeline", "## Impact", "## 5 Whys", "## What went well / what did not", "## Action items",
    ]  # fmt: skip
    assert sum(line.endswith("Why? _…_") for line in lines) == 5
    assert "- [ ] Add or update the runbook for this failure" in lines


def test_an_open_untriaged_report() -> None:
    report = Incident(3, "report:x", "Install fails on Windows", IncidentStatus.TRIGGERED, None, T0, T0,
                      source=IncidentSource.MANUAL, report_url="https://github.com/winglang/wing/issues/1")  # fmt: skip
    text = render_postmortem(report, [])
    assert "- **Severity:** untriaged" in text
    assert "- **Impact window:** 2026-11-22 03:00 UTC → ongoing" in text
    assert "- **Reported at:** https://github.com/winglang/wing/issues/1" in text
