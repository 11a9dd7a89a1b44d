"""Last known good: what a check looked like when it last passed, and what reverting means.

Each check kind says what of a passing result is worth remembering (`Check.capture`: the
version an npm tag pointed at, the green commit of a workflow, the marketplace version,
an HTTP response's recorded version value) and turns that memory and a failing result
into the block carried by the incident, its pages and the API (`Check.advice`):

    {"at": "2026-11-22T10:00:00+00:00", "values": {...}, "text": "...",
     "command": "npm dist-tag add winglang@0.85.48 latest", "url": null}

`capture` and `advice` here look the kind up in the registry; a kind that declares
nothing gets `Check`'s defaults (only the time, "last passed at ..."). Both are pure.
`LastGoodKeeper` holds the memory per check for the pipeline and persists it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from monitor.checks import CHECKS, Check
from monitor.checks.base import LastGood
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult
from monitor.store import Store

__all__ = ["LastGood", "LastGoodKeeper", "advice", "capture", "kind_of"]

log = structlog.stdlib.get_logger(__name__)

_LAST_GOOD = "lastgood:"  # store key prefix


def kind_of(kind: str) -> type[Check[Any]]:
    """The class of a registered kind; `Check` itself (the defaults) for any other."""
    return CHECKS.get(kind, Check)


def capture(kind: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a passing run worth remembering, by kind (empty: only the time)."""
    return kind_of(kind).capture(details)


def advice(kind: str, good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
    """What was last good and what reverting to it means, for a failing result's details.

    None when nothing is known: the check never passed while the monitor watched it and
    the upstream names no good state either.
    """
    return kind_of(kind).advice(good, failing)


class LastGoodKeeper:
    """Last known good per check, kept in memory and in the store (`lastgood:<check>`).

    A record is stored when its facts change, and otherwise (only its time moved) at the
    first failure after it, so a restart loses nothing that a page would need.
    """

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self.by_check: dict[str, LastGood] = {}
        self._unsaved: set[str] = set()

    async def load(self, checks: Iterable[CheckConfigBase]) -> None:
        if self.store is None:
            return
        saved = await self.store.kv_prefix(_LAST_GOOD)
        for config in checks:
            if (doc := saved.get(_LAST_GOOD + config.name)) is not None:
                try:
                    self.by_check[config.name] = LastGood.from_json(json.loads(doc))
                except (ValueError, KeyError, TypeError):
                    log.warning("last_good_unreadable", check=config.name)

    async def forget(self, names: list[str]) -> None:
        for name in names:
            self.by_check.pop(name, None)
            self._unsaved.discard(name)
        if self.store is not None and names:
            await self.store.kv_delete([_LAST_GOOD + n for n in names])

    async def observe(self, result: CheckResult) -> None:
        """Remembers a passing result; saves a record that only moved on a failure."""
        if result.ok:
            values = capture(result.kind, result.details)
            prev = self.by_check.get(result.check)
            self.by_check[result.check] = LastGood(result.started_at, values)
            if prev is None or prev.values != values:
                await self._save(result.check)
            else:
                self._unsaved.add(result.check)
        elif result.check in self._unsaved:
            await self._save(result.check)

    def advice(self, config: CheckConfigBase, result: CheckResult) -> dict[str, Any] | None:
        """The advice for a failing result of `config` (None for a passing one)."""
        if result.ok:
            return None
        return advice(config.kind, self.by_check.get(config.name), result.details)

    async def _save(self, check: str) -> None:
        """Written, or still unsaved when the store refuses it (tried again next time)."""
        if self.store is not None:
            doc = json.dumps(self.by_check[check].to_json(), default=str)
            await self.store.kv_set(_LAST_GOOD + check, doc)
        self._unsaved.discard(check)
