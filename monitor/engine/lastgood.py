"""Last known good: what a check looked like when it last passed, and what reverting means.

Each check kind says what of a passing result is worth remembering (`Check.capture`: the
version an npm tag pointed at, the green commit of a workflow, the marketplace version,
an HTTP response's recorded version value) and turns that memory and a failing result
into the block carried by the incident, its pages and the API (`Check.advice`):

    {"at": "2026-11-22T10:00:00+00:00", "values": {...}, "text": "...",
     "command": "npm dist-tag add winglang@0.85.48 latest", "url": null}

`capture` and `advice` here look the kind up in the registry; a kind that declares
nothing gets `Check`'s defaults (only the time, "last passed at ..."). Both are pure.
The pipeline keeps the memory (`LastGoodKeeper`) and persists it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.checks import CHECKS, Check
from monitor.checks.base import LastGood

__all__ = ["LastGood", "advice", "capture", "kind_of"]


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
