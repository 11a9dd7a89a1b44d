"""`kind: statuspage`: what an upstream's Statuspage says about the components a project uses.

Reads `{url}/api/v2/summary.json` (Atlassian Statuspage v2, e.g. githubstatus.com). Other
checks name a statuspage check in `upstream_status`, so their failures say whether the
upstream was in trouble at the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field
from yarl import URL

from monitor.checks.base import Check, CheckContext
from monitor.checks.upstream import dig, fetch_json
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import FailureKind, Observation, Outcome

__all__ = [
    "Component",
    "Incident",
    "StatusSummary",
    "StatuspageCheck",
    "StatuspageCheckConfig",
    "judge_summary",
    "parse_summary",
]

COMPONENT_OUTCOMES = {
    "operational": Outcome.UP,
    "degraded_performance": Outcome.DEGRADED,
    "under_maintenance": Outcome.DEGRADED,
    "partial_outage": Outcome.DOWN,
    "major_outage": Outcome.DOWN,
}
INDICATOR_OUTCOMES = {
    "none": Outcome.UP,
    "minor": Outcome.DEGRADED,
    "maintenance": Outcome.DEGRADED,
    "major": Outcome.DOWN,
    "critical": Outcome.DOWN,
}
_RANK = {Outcome.UP: 0, Outcome.DEGRADED: 1, Outcome.DOWN: 2}
# Pages carry a pseudo-component that points at the page and mirrors the worst status.
_PLACEHOLDER = "visit "
_DONE = frozenset({"resolved", "postmortem"})


class StatuspageCheckConfig(CheckConfigBase):
    """A Statuspage and the components to watch on it."""

    kind: Literal["statuspage"]
    url: str = Field(
        pattern=r"^https?://\S+$", description="The page, e.g. https://www.githubstatus.com"
    )
    components: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Component names (any case) or ids; empty: the page's overall indicator.",
    )


@dataclass(frozen=True, slots=True)
class Component:
    id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An unresolved incident and the ids of the components it names."""

    name: str
    component_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """The parts of `summary.json` a judgement needs."""

    page: str | None
    indicator: str
    description: str
    components: tuple[Component, ...]
    incidents: tuple[Incident, ...]


def parse_summary(doc: Any) -> StatusSummary | Observation:
    """Reads a Statuspage v2 `summary.json`. Pure; never raises; bad shapes are SCHEMA."""
    if not isinstance(doc, dict):
        return _schema("status page answer is not a JSON object")
    indicator = dig(doc, "status", "indicator", kind=str)
    if indicator is None:
        return _schema("status page answer has no status.indicator string")
    raw = doc.get("components")
    if not isinstance(raw, list):
        return _schema("status page answer has no components list")
    components = []
    for i, item in enumerate(raw):
        cid, name, status = (dig(item, key, kind=str) for key in ("id", "name", "status"))
        if cid is None or name is None or status is None:
            return _schema(f"status page components[{i}] has no id, name or status string")
        if not name.lower().startswith(_PLACEHOLDER):
            components.append(Component(cid, name, status))
    incidents = _incidents(doc.get("incidents", []))
    if isinstance(incidents, Observation):
        return incidents
    return StatusSummary(
        page=dig(doc, "page", "name", kind=str),
        indicator=indicator,
        description=dig(doc, "status", "description", kind=str) or indicator,
        components=tuple(components),
        incidents=incidents,
    )


def _incidents(raw: Any) -> tuple[Incident, ...] | Observation:
    """Unresolved incidents (summary.json lists only those; resolved ones are skipped anyway)."""
    if not isinstance(raw, list):
        return _schema("status page incidents is not a list")
    incidents = []
    for i, item in enumerate(raw):
        name = dig(item, "name", kind=str)
        if name is None:
            return _schema(f"status page incidents[{i}] has no name string")
        if dig(item, "status", kind=str) in _DONE:
            continue
        touched = dig(item, "components", kind=list) or []
        ids = frozenset(c for x in touched if (c := dig(x, "id", kind=str)) is not None)
        incidents.append(Incident(name, ids))
    return tuple(incidents)


def judge_summary(summary: StatusSummary, wanted: Sequence[str]) -> Observation:
    """The worst status of the wanted components, or the page's indicator if none are named."""
    if not wanted:
        return _judge_page(summary)
    picked: list[Component] = []
    for want in wanted:
        found = _find(summary.components, want)
        if isinstance(found, Observation):
            return found
        picked.append(found)
    for c in picked:
        if c.status not in COMPONENT_OUTCOMES:
            return _schema(f"component {c.name!r} has an unknown status {c.status!r}")
    outcome = max((COMPONENT_OUTCOMES[c.status] for c in picked), key=_RANK.__getitem__)
    ids = {c.id for c in picked}
    # An incident is ours if it names one of our components, or names none at all (pages
    # do not always link incidents to components).
    related = [i.name for i in summary.incidents if not i.component_ids or i.component_ids & ids]
    message = _component_text(picked) + _notes(_incident_text(related))
    details = {
        "components": {c.name: c.status for c in picked},
        "indicator": summary.indicator,
        "incidents": [i.name for i in summary.incidents],
    }
    return _observe(outcome, message, details)


def _find(components: tuple[Component, ...], want: str) -> Component | Observation:
    by_id = [c for c in components if c.id == want]
    if by_id:
        return by_id[0]
    by_name = [c for c in components if c.name.casefold() == want.casefold()]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        ids = ", ".join(c.id for c in by_name)
        return _schema(f"component {want!r} is ambiguous on the page (ids {ids}); name it by id")
    names = ", ".join(c.name for c in components) or "no components"
    return _schema(f"component {want!r} not on the page; it has: {names}")


def _judge_page(summary: StatusSummary) -> Observation:
    outcome = INDICATOR_OUTCOMES.get(summary.indicator)
    if outcome is None:
        return _schema(f"status page has an unknown indicator {summary.indicator!r}")
    who = f"{summary.page}: " if summary.page else ""
    notes = [] if outcome is Outcome.UP else [f"indicator {summary.indicator}"]
    incidents = _incident_text([i.name for i in summary.incidents])
    message = f"{who}{summary.description}{_notes(*notes, incidents)}"
    details = {
        # The whole page can be long; the components in trouble are what a reader needs.
        "components": {c.name: c.status for c in summary.components if c.status != "operational"},
        "indicator": summary.indicator,
        "incidents": [i.name for i in summary.incidents],
    }
    return _observe(outcome, message, details)


def _component_text(picked: list[Component]) -> str:
    troubled = [c for c in picked if c.status != "operational"]
    if not troubled:
        return ", ".join(c.name for c in picked) + ": operational"
    return "; ".join(f"{c.name}: {c.status.replace('_', ' ')}" for c in troubled)


def _incident_text(names: list[str]) -> str:
    if not names:
        return ""
    label = "incident" if len(names) == 1 else "incidents"
    return f"{label}: {'; '.join(names)}"


def _notes(*notes: str) -> str:
    given = [n for n in notes if n]
    return f" ({'; '.join(given)})" if given else ""


def _observe(outcome: Outcome, message: str, details: dict[str, Any]) -> Observation:
    failure = None if outcome is Outcome.UP else FailureKind.UPSTREAM_DEGRADED
    return Observation(outcome, failure, message, details)


def _schema(message: str) -> Observation:
    return Observation.down(FailureKind.SCHEMA, message)


class StatuspageCheck(Check[StatuspageCheckConfig]):
    """Loads the page's summary once per run and judges the named components."""

    Config = StatuspageCheckConfig
    upstream_label = "status page"
    unavailable_is_blindness = True  # the page is the monitor's window on the provider

    def __init__(self, config: StatuspageCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        base = config.url.rstrip("/")
        self._summary_url = f"{base}/api/v2/summary.json"
        self._host = URL(base).host
        self._wanted = tuple(config.components)

    @property
    def target(self) -> str:
        return self._host or self.config.url

    async def run(self) -> Observation:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                reply = await fetch_json(
                    self.ctx.session,
                    self._summary_url,
                    what="status page",
                    headers={"Accept": "application/json"},
                )
        except TimeoutError:
            return Observation.down(
                FailureKind.UNAVAILABLE,
                f"status page did not answer within {self.config.timeout_s:g}s",
            )
        if isinstance(reply, Observation):
            return reply
        summary = parse_summary(reply.doc)
        if isinstance(summary, Observation):
            return summary
        return judge_summary(summary, self._wanted)
