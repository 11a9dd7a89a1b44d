"""Membership values: who a daemon is among the replicas sharing one database, and the
store methods that keep the `replicas` table (the PostgreSQL store has them; SQLite, one
daemon per file, has none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Replica", "ReplicaBook", "ReplicaId"]


@dataclass(frozen=True, slots=True)
class ReplicaId:
    """Who this daemon is in the `replicas` table, and how long the database waits for
    its next beat before it counts as gone."""

    id: str
    host: str
    pid: int
    version: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Replica:
    """A live replica as the database sees it: `age_s` since it last beat, by the
    database's clock."""

    id: str
    host: str
    pid: int
    version: str
    age_s: float


@runtime_checkable
class ReplicaBook(Protocol):
    """A store that keeps the replicas of a fleet."""

    async def beat_replica(self, replica: ReplicaId) -> list[Replica]:
        """Registers or renews `replica`; returns the live set, judged by the store's
        clock alone."""
        ...

    async def leave_replica(self, replica_id: str) -> None:
        """Takes a replica out of the live set at once."""
        ...
