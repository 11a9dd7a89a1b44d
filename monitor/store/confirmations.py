"""Confirmation values: a replica about to call a check down asks others on the same
database to probe it too (`confirm: N`), and the store methods that carry the requests and
their answers (the PostgreSQL store has them; SQLite, one daemon per file, has none).

A request is `needed` slots, one per other vantage point it wants. Another replica claims
one slot at a time (never one of its own requests, never two slots of one request), probes
and answers; a replica that cannot answer (it has no such check, or a different definition
of it) declines, and the slot is free again for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = ["LISTENING", "Answer", "ConfirmationBook", "Seen", "Slot"]

LISTENING = "listening"  # the notice that says wake-ups are heard from now on


class Seen(StrEnum):
    """What the answering replica's probe saw."""

    DOWN = "down"  # it fails there too
    UP = "up"  # it works there
    DEGRADED = "degraded"  # slow or partly failing there, but not down
    BLIND = "blind"  # its probe could not look (rate limited, refused, out of resources)


@dataclass(frozen=True, slots=True)
class Slot:
    """One vantage point a request wants, as the replica that claimed it sees it."""

    id: int
    request: int
    check: str
    definition: str  # the check's definition hash on the requester (`engine.confirm`)
    requested_by: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What one other replica saw; `at` by the database's clock."""

    replica: str
    host: str
    seen: Seen
    failure: str | None
    message: str
    at: datetime


@runtime_checkable
class ConfirmationBook(Protocol):
    """A store through which replicas of a fleet confirm each other's failures."""

    async def request_confirmation(
        self, check: str, definition: str, requested_by: str, needed: int, within_s: float
    ) -> int:
        """Asks `needed` other replicas to probe `check`, within `within_s` by the
        database's clock, and wakes them; returns the request's id."""
        ...

    async def claim_confirmation(self, replica: str) -> Slot | None:
        """Takes one open slot of a request of another replica, one this replica has
        neither claimed, answered nor declined; None when there is none."""
        ...

    async def answer_confirmation(
        self, slot: int, replica: str, host: str, seen: Seen, failure: str | None, message: str
    ) -> None:
        """Records what `replica` saw for a slot it claimed, and wakes the requester."""
        ...

    async def decline_confirmation(self, slot: int, replica: str) -> None:
        """Gives a claimed slot back for another replica; this one will not take it again."""
        ...

    async def confirmation_answers(self, request: int) -> list[Answer]:
        """The answers to a request so far, in the order they came."""
        ...

    async def close_confirmation(self, request: int) -> None:
        """Ends a request: its slots not yet claimed are taken by nobody any more."""
        ...

    async def prune_confirmations(self, older_than_s: float) -> int:
        """Deletes requests and answers older than that; returns how many rows went."""
        ...

    async def listen_confirmations(self, notice: Callable[[str], None]) -> None:
        """Calls `notice` with each wake-up (`request:<id>`, `answer:<id>`) until
        cancelled; raises `StoreError` when the connection is lost. A store may call it
        with `LISTENING` once every wake-up from then on is heard."""
        ...
