"""What every replica of a fleet reads of the others: the last reading of each check
(written by the replica that runs it) and a change feed of incidents and silences (the
PostgreSQL store has them; SQLite, one daemon per file, needs neither)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "CHANGED_INCIDENTS",
    "CHANGED_SILENCES",
    "SharedReadings",
    "incident_changed",
    "notice_incident",
]

CHANGED_INCIDENTS = "incidents"  # a change feed's notice: an incident was created or changed
CHANGED_SILENCES = "silences"  # a silence was created or expired


def incident_changed(incident_id: int) -> str:
    """The notice of one incident's change, `incidents:<id>`: a replica reads that one
    incident back, not every open one."""
    return f"{CHANGED_INCIDENTS}:{incident_id}"


def notice_incident(notice: str) -> int | None:
    """The incident a notice names (`incident_changed`); None for any other notice."""
    what, _, ident = notice.partition(":")
    return int(ident) if what == CHANGED_INCIDENTS and ident.isdigit() else None


@runtime_checkable
class SharedReadings(Protocol):
    """A store shared by replicas: per check, the reading its owner last wrote (an opaque
    JSON text), and a feed that tells every replica when incidents or silences change."""

    async def save_readings(self, replica_id: str, readings: Sequence[tuple[str, str]]) -> None:
        """Writes (check, reading) rows in one transaction, each replacing the check's row;
        a reading is a JSON text, kept and given back as it is."""
        ...

    async def load_readings(
        self, since: float | None, *, other_than: str | None = None
    ) -> tuple[float, dict[str, str]]:
        """The rows written since `since` (a cursor this method returned before; None:
        every row), and the cursor to pass next time. Timed by the store's clock, with an
        overlap: a row may come twice, none is missed. `other_than`: not the rows that
        replica wrote (a replica's own are of no use to it)."""
        ...

    async def listen_changes(self, notice: Callable[[str], None]) -> None:
        """Calls `notice` with `CHANGED_INCIDENTS` (or `incident_changed(id)`, naming the
        incident) or `CHANGED_SILENCES` for each change made through any replica, until
        cancelled (StoreError when the feed breaks)."""
        ...
