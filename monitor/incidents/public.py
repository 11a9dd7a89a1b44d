"""What the public may read of past incidents: the incident history of a status page.

A resolved incident is shown by its check, severity, when it opened and was resolved, and
its public note (written for the public by a person, `Incident.public_note`) or else its
title; never its message, its timeline or anything else kept for the people on call.
Drills and the monitor's own blindness are not incidents of the assets, and an untriaged
report that was closed without a severity was never one: none of them is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.core.model import Incident, IncidentSource, IncidentStatus, Severity

__all__ = [
    "HISTORY_DAYS",
    "MAX_HISTORY",
    "MAX_PUBLIC_NOTE",
    "PUBLIC_SOURCES",
    "PublicIncident",
    "public_incident",
]

MAX_PUBLIC_NOTE = 2000  # characters of a public note
HISTORY_DAYS = 90  # how far back the public history goes by default, and at most
MAX_HISTORY = 500  # incidents listed at most
# Incidents of the assets: opened by a failing check, or by hand from a user's report.
PUBLIC_SOURCES = (IncidentSource.CHECK, IncidentSource.MANUAL)


@dataclass(frozen=True, slots=True)
class PublicIncident:
    """A resolved incident as the public sees it. `summary` is the public note, else the
    title."""

    id: int
    check: str | None
    severity: Severity
    title: str
    note: str | None
    opened_at: datetime
    resolved_at: datetime

    @property
    def duration_s(self) -> int:
        return max(0, int((self.resolved_at - self.opened_at).total_seconds()))

    @property
    def summary(self) -> str:
        return self.note or self.title

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity.value,
            "title": self.title,
            "note": self.note,
            "summary": self.summary,
            "opened_at": self.opened_at.isoformat(timespec="seconds"),
            "resolved_at": self.resolved_at.isoformat(timespec="seconds"),
            "duration_s": self.duration_s,
        }


def public_incident(incident: Incident) -> PublicIncident | None:
    """The public view of `incident`; None when it is not for the public (open, a drill,
    the monitor's own health, never triaged)."""
    if (
        incident.status is not IncidentStatus.RESOLVED
        or incident.resolved_at is None
        or incident.severity is None
        or incident.drill
        or incident.source not in PUBLIC_SOURCES
    ):
        return None
    return PublicIncident(
        id=incident.id,
        check=incident.check,
        severity=incident.severity,
        title=incident.title,
        note=incident.public_note or None,
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
    )
