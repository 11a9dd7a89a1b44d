"""Stored rows to values and back, the same for every backend.

A backend differs only in how it keeps a time, a flag and a JSON column (`Codec`):
SQLite keeps fixed-width ISO text, 0/1 and JSON text; PostgreSQL keeps `timestamptz`,
`boolean` and `jsonb`, which its driver already decodes. The columns and their meaning
are written once, here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from monitor.core.alertstate import AlertState, CheckState
from monitor.core.model import (
    Incident,
    IncidentSource,
    IncidentStatus,
    OutboxItem,
    OutboxStatus,
    Severity,
    Silence,
    TimelineEntry,
)

__all__ = ["Codec", "Row", "check_state", "entry", "incident", "incident_params", "item", "silence"]


class Row(Protocol):
    """A result row read by column name (`sqlite3.Row`, psycopg's dict rows)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Codec:
    """How one backend keeps times, flags and JSON columns."""

    time_in: Callable[[datetime], object]  # an aware time to its stored form
    time_out: Callable[[Any], datetime]  # a stored time to an aware UTC datetime
    flag_in: Callable[[bool], object]
    json_out: Callable[[Any], Any]  # a stored JSON column to its value

    def opt_time_in(self, at: datetime | None) -> object:
        return None if at is None else self.time_in(at)

    def opt_time_out(self, value: Any) -> datetime | None:
        return None if value is None else self.time_out(value)


def check_state(row: Row, c: Codec) -> CheckState:
    return CheckState(
        state=AlertState(row["state"]),
        since=c.opt_time_out(row["since"]),
        ups=row["ups"],
        non_downs=row["non_downs"],
        bads=row["bads"],
        downs=row["downs"],
        blinds=row["blinds"],
        seen=None if row["seen"] is None else AlertState(row["seen"]),
        seen_since=c.opt_time_out(row["seen_since"]),
        cause=row["cause"],
    )


def incident_params(i: Incident, c: Codec) -> dict[str, object]:
    return {
        "key": i.key,
        "title": i.title,
        "status": IncidentStatus(i.status).value,
        "severity": None if i.severity is None else Severity(i.severity).value,
        "opened_at": c.time_in(i.opened_at),
        "updated_at": c.time_in(i.updated_at),
        "check_name": i.check,
        "source": IncidentSource(i.source).value,
        "acknowledged_at": c.opt_time_in(i.acknowledged_at),
        "resolved_at": c.opt_time_in(i.resolved_at),
        "assignee": i.assignee,
        "rule": i.rule,
        "failure": i.failure,
        "message": i.message,
        "suppressed": i.suppressed,
        "report_url": i.report_url,
        "auto_resolve": c.flag_in(i.auto_resolve),
        "reopened": i.reopened,
        "drill": c.flag_in(i.drill),
        "last_good": None if i.last_good is None else json.dumps(i.last_good),
        "public_note": i.public_note,
    }


def incident(row: Row, c: Codec) -> Incident:
    return Incident(
        id=int(row["id"]),
        key=row["key"],
        title=row["title"],
        status=IncidentStatus(row["status"]),
        severity=None if row["severity"] is None else Severity(row["severity"]),
        opened_at=c.time_out(row["opened_at"]),
        updated_at=c.time_out(row["updated_at"]),
        check=row["check_name"],
        source=IncidentSource(row["source"]),
        acknowledged_at=c.opt_time_out(row["acknowledged_at"]),
        resolved_at=c.opt_time_out(row["resolved_at"]),
        assignee=row["assignee"],
        rule=row["rule"],
        failure=row["failure"],
        message=row["message"],
        suppressed=row["suppressed"],
        report_url=row["report_url"],
        auto_resolve=bool(row["auto_resolve"]),
        reopened=row["reopened"],
        drill=bool(row["drill"]),
        last_good=None if row["last_good"] is None else c.json_out(row["last_good"]),
        public_note=row["public_note"],
    )


def entry(row: Row, c: Codec) -> TimelineEntry:
    return TimelineEntry(
        incident_id=int(row["incident_id"]),
        at=c.time_out(row["at"]),
        event=row["event"],
        actor=row["actor"],
        text=row["text"],
        data=c.json_out(row["data"]),
        count=row["count"],
        last_at=c.opt_time_out(row["last_at"]),
    )


def silence(row: Row, c: Codec) -> Silence:
    matchers = c.json_out(row["matchers"])
    return Silence(
        id=int(row["id"]),
        matchers={k: tuple(v) for k, v in matchers.items()},
        starts_at=c.time_out(row["starts_at"]),
        ends_at=c.time_out(row["ends_at"]),
        author=row["author"],
        comment=row["comment"],
        created_at=c.time_out(row["created_at"]),
        expired_at=c.opt_time_out(row["expired_at"]),
    )


def item(row: Row, c: Codec) -> OutboxItem:
    return OutboxItem(
        id=int(row["id"]), key=row["key"], notifier=row["notifier"], payload=row["payload"],
        created_at=c.time_out(row["created_at"]),
        next_attempt_at=c.time_out(row["next_attempt_at"]),
        attempts=row["attempts"], status=OutboxStatus(row["status"]),
        sent_at=c.opt_time_out(row["sent_at"]), last_error=row["last_error"],
    )  # fmt: skip
