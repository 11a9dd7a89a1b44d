"""Membership values: who a daemon is among the replicas sharing one database, and the
store methods that keep the `replicas` table (the PostgreSQL store has them; SQLite, one
daemon per file, has none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Replica", "ReplicaBook", "ReplicaId", "RunBook"]


@dataclass(frozen=True, slots=True)
class ReplicaId:
    """Who this daemon is in the `replicas` table, and how long the database waits for
    its next beat before it counts as gone."""

    id: str
    host: str
    pid: int
    version: str
    ttl_s: float
    config_hash: str = ""  # of its loaded config (`engine.fleet.config_hash`)


@dataclass(frozen=True, slots=True)
class Replica:
    """A live replica as the database sees it: `age_s` since it last beat, by the
    database's clock."""

    id: str
    host: str
    pid: int
    version: str
    age_s: float
    config_hash: str = ""


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


@runtime_checkable
class RunBook(Protocol):
    """A store that knows when each check last ran in the fleet, by its own clock: what a
    replica that takes a check over plans its next run from."""

    async def record_runs(self, replica_id: str, runs: Sequence[tuple[str, float]]) -> None:
        """Records runs as (check, seconds ago): the store keeps, per check, the latest
        run it heard of, timed by its own clock (now() minus the age)."""
        ...

    async def last_runs(self, checks: Sequence[str]) -> dict[str, float]:
        """Seconds since each of `checks` last ran, by the store's clock; checks never
        recorded are missing."""
        ...

    async def last_runners(self, checks: Sequence[str]) -> dict[str, tuple[float, str]]:
        """As `last_runs`, with the replica that recorded each run: (seconds ago, id)."""
        ...

    async def beat_and_record(
        self,
        replica: ReplicaId,
        runs: Sequence[tuple[str, float]],
        readings: Sequence[tuple[str, str]],
        gone_after_s: float | None,
    ) -> tuple[list[Replica], list[Replica]]:
        """In one call: `ReplicaBook.beat_replica`, `record_runs`, the readings as
        `SharedReadings.save_readings` writes them, and, when `gone_after_s` is set, the
        claim of the replicas not heard from within `gone_after_s` that never left (never
        this one): each is removed and returned to exactly one caller across the fleet.
        Returns (live set, claimed)."""
        ...
