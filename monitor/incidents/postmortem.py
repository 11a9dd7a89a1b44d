"""A post-mortem draft from an incident and its timeline, as markdown. Pure.

The shape follows the operations process: what happened, how long, the full timeline,
a 5 Whys analysis to fill in, and action items as a checklist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.core.model import Incident, TimelineEntry
from monitor.core.redact import redact_text

__all__ = ["render_postmortem"]


def _span(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _cell(text: str) -> str:
    """Table-safe: a pipe would end the cell, a newline the row."""
    return text.replace("|", r"\|").replace("\n", " ")


def _at(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "—"


def render_postmortem(incident: Incident, timeline: Sequence[TimelineEntry]) -> str:
    acked = incident.acknowledged_at or next(
        (e.at for e in timeline if e.event == "acknowledged"), None
    )
    detected = timeline[0].at if timeline else incident.opened_at
    end = incident.resolved_at
    lines = [
        f"# Post-mortem: {incident.title}",
        "",
        "## Summary",
        "",
        f"- **Incident:** #{incident.id} ({incident.source}{f', check `{incident.check}`' if incident.check else ''})",
        f"- **Severity:** {incident.severity or 'untriaged'}"
        + (f" (rule `{incident.rule}`)" if incident.rule else ""),
        f"- **Status:** {incident.status.value}"
        + (f", owner {incident.assignee}" if incident.assignee else ""),
        f"- **What failed:** {incident.message or '—'}"
        + (f" (`{incident.failure}`)" if incident.failure else ""),
        f"- **Impact window:** {_at(incident.opened_at)} → {_at(end) if end else 'ongoing'}",
        f"- **Detected:** {_at(detected)}",
        f"- **Time to acknowledge:** {_span(acked - incident.opened_at if acked else None)}",
        f"- **Time to resolve:** {_span(end - incident.opened_at if end else None)}",
    ]
    if incident.report_url:
        lines.append(f"- **Reported at:** {incident.report_url}")
    if incident.last_good and incident.last_good.get("text"):
        lines.append(f"- **Last known good:** {incident.last_good['text']}")
    lines += ["", "## Timeline", "", "| time (UTC) | who | what |", "|---|---|---|"]
    lines += [
        f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.actor} | {e.event}: {_cell(e.text)}{_seen(e)} |"
        for e in timeline
    ]
    lines += [
        "",
        "## Impact",
        "",
        "_Who was affected, and how (users or contributors; could they work around it?)._",
        "",
        "## 5 Whys",
        "",
        *[f"{i}. Why? _…_" for i in range(1, 6)],
        "",
        "Root cause: _…_",
        "",
        "## What went well / what did not",
        "",
        "- _…_",
        "",
        "## Action items",
        "",
        "- [ ] Fix the root cause: _…_",
        "- [ ] Add or update the runbook for this failure",
        "- [ ] Add a check or a rule that would have caught it sooner: _…_",
        "",
    ]
    return redact_text("\n".join(lines))


def _seen(e: TimelineEntry) -> str:
    """ " (seen 12 times, last 05:40:00)" for an entry the same failure repeated."""
    if e.count <= 1:
        return ""
    return f" (seen {e.count} times" + (f", last {e.last_at:%H:%M:%S})" if e.last_at else ")")
