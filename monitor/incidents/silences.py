"""Silences created at run time, kept in memory for the pipeline and written through to the store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase

import structlog

from monitor.core.clock import Clock
from monitor.core.model import Silence
from monitor.store import Store

__all__ = ["MATCHER_KEYS", "SilenceBook", "silence_matches"]

log = structlog.stdlib.get_logger(__name__)

MATCHER_KEYS = ("checks", "tags", "kinds")


def silence_matches(silence: Silence, check: str, kind: str, tags: frozenset[str]) -> bool:
    """Whether `silence` covers the check, ignoring its time span.

    Every key given must match, any value within a key may; `checks` are globs. A
    silence with no matchers (or only empty ones) matches nothing, so a form submitted
    empty by mistake cannot silence every check. An unknown key matches nothing either:
    failing to page is the worse error.
    """
    given = {key: values for key, values in silence.matchers.items() if values}
    if not given or not given.keys() <= set(MATCHER_KEYS):
        return False
    checks, kinds, wanted = given.get("checks"), given.get("kinds"), given.get("tags")
    return (
        (checks is None or any(fnmatchcase(check, g) for g in checks))
        and (kinds is None or kind in kinds)
        and (wanted is None or not tags.isdisjoint(wanted))
    )


class SilenceBook:
    """The silences the pipeline consults; `load()` once at start, and in a fleet again
    whenever another replica changed them (`engine.fleetview`). Changes and loads take
    turns, so a load never replaces a silence added meanwhile with an older list."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._all: list[Silence] = []
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            self._all = await self.store.list_silences()

    def active(self, now: datetime | None = None) -> list[Silence]:
        now = now or self.clock.now()
        return [s for s in self._all if s.active(now)]

    @property
    def all(self) -> Sequence[Silence]:
        return list(self._all)

    async def add(
        self,
        matchers: Mapping[str, Sequence[str]],
        starts_at: datetime,
        ends_at: datetime,
        author: str,
        comment: str,
    ) -> Silence:
        """Raises ValueError when the silence would match nothing or end before it starts."""
        clean = {k: tuple(v) for k, v in matchers.items() if v}
        unknown = set(clean) - set(MATCHER_KEYS)
        if unknown:
            raise ValueError(
                f"unknown matcher(s) {', '.join(sorted(unknown))}; use {', '.join(MATCHER_KEYS)}"
            )
        if not clean:
            raise ValueError("a silence needs at least one matcher (checks, tags or kinds)")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        silence = Silence(0, clean, starts_at, ends_at, author, comment, self.clock.now())
        async with self._lock:
            silence = await self.store.create_silence(silence)
            self._all.append(silence)
        log.info(
            "silence_created", silence_id=silence.id, author=author, ends_at=ends_at.isoformat()
        )
        return silence

    async def expire(self, silence_id: int) -> Silence | None:
        async with self._lock:
            expired = await self.store.expire_silence(silence_id, self.clock.now())
            if expired is not None:
                self._all = [expired if s.id == silence_id else s for s in self._all]
        if expired is not None:
            log.info("silence_expired", silence_id=silence_id)
        return expired
