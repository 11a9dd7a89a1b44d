"""The status page: the assets by group with their state, uptime, 90 days of daily status
and recent runs; the open incidents and those resolved in the last 90 days; and a page per
asset with its latency charts and its incidents.

`StatusView.snapshot()` builds the document of `GET /api/status` from memory only (no
store reads). `StatusView.page(query)` builds one page of `GET /` (filtered, grouped,
paginated: only the assets shown are read in full, so 10,000 checks cost a sort, not a
page of 15 MB) and `render_html` turns it into HTML; `StatusView.asset(name)` and
`render_asset` do the same for `GET /assets/{name}`. History comes from the `Summaries`
kept in memory (`monitor.engine.summary`): a request reads nothing from the store.
Every page is server-rendered, with no script, charts as inline SVG, and nothing loaded
from elsewhere (`PAGE_CSP`).

Nothing secret is shown: check names, kinds, descriptions, tags, runbook links, states and
the one-line messages that pages carry too, each through the redaction layer; of an
incident only its title or its public note, never its timeline, message or failure.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

from monitor.core.alertstate import AlertState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase, GroupConfig, group_of
from monitor.core.model import CheckResult, Incident
from monitor.core.redact import redact, redact_text
from monitor.engine.history import RUNS, CheckReadings
from monitor.engine.summary import DAYS, Day, Hour, Summaries, overlapping
from monitor.web.common import already_current

if TYPE_CHECKING:
    from monitor.incidents.manager import IncidentManager

__all__ = [
    "PAGE_CSP",
    "PER_PAGE",
    "STATES",
    "PageQuery",
    "StatusView",
    "render_asset",
    "render_html",
    "render_not_found",
    "routes",
]

log = structlog.stdlib.get_logger(__name__)

# The pages have no script and load nothing; forms submit to the page itself only.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'self'"
)
STATES = ("down", "degraded", "blind", "unknown", "up")  # worst first
_RANK = {s: n for n, s in enumerate(STATES)}
_ALERT_RANK = {a: _RANK[a.value] for a in AlertState if a.value in _RANK}
_UNKNOWN = _RANK["unknown"]
PER_PAGE, MAX_PER_PAGE = 50, 100
MAX_QUERY = 200  # characters of a search kept
RESOLVED_SHOWN = 50  # resolved incidents on the main page (newest first)
# SLO block of the asset page: given a check's name, trusted HTML (escaped by its maker),
# or None for no block.
SloSection = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What `GET /` was asked: `q` (text in name, description or tags), `state` (one of
    `STATES`, or `failing`: down or degraded), `group`, `page` (from 1) and `per_page`."""

    q: str = ""
    state: str = ""
    group: str = ""
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> PageQuery:
        """Never raises: what does not parse falls back to the default."""
        state = query.get("state", "")
        return cls(
            q=query.get("q", "").strip()[:MAX_QUERY],
            state=state if state in (*STATES, "failing") else "",
            group=query.get("group", "")[:MAX_QUERY],
            page=_int(query.get("page"), 1, 1, 10**6),
            per_page=_int(query.get("per_page"), PER_PAGE, 1, MAX_PER_PAGE),
        )

    def matches(self, state: str, group: str, c: CheckConfigBase) -> bool:
        if self.state == "failing" and state not in ("down", "degraded"):
            return False
        if self.state and self.state != "failing" and state != self.state:
            return False
        if self.group and group != self.group:
            return False
        if self.q:
            needle = self.q.casefold()
            hay = (c.name, c.description or "", *c.tags)
            return any(needle in h.casefold() for h in hay)
        return True

    def link(self, **changes: Any) -> str:
        """The URL of this query with `changes`, defaults left out."""
        values = {"q": self.q, "state": self.state, "group": self.group,
                  "page": self.page, "per_page": self.per_page, **changes}  # fmt: skip
        defaults = {"page": 1, "per_page": PER_PAGE}
        kept = {k: v for k, v in values.items() if v and v != defaults.get(k)}
        return "/?" + urlencode(kept) if kept else "/"


def _int(text: str | None, default: int, low: int, high: int) -> int:
    if not text or not text.isascii() or not text.isdigit() or len(text) > 9:
        return default
    return min(max(int(text), low), high)


@dataclass(slots=True)
class StatusView:
    """What the status page reads: the checks, their state and history, the incidents."""

    title: str
    clock: Clock
    checks: Callable[[], Sequence[CheckConfigBase]]
    results: CheckReadings
    incidents: IncidentManager | None
    runbook_of: Callable[[Incident], str | None] = lambda _incident: None
    summaries: Summaries | None = None
    groups: Callable[[], Mapping[str, GroupConfig]] = dict
    # The asset page's SLO block: plug a `SloSection` in here.
    slo_section: SloSection | None = None
    # Awaited before each request reads `results` (a replica reads the others' rows).
    refresh: Callable[[], Awaitable[None]] = already_current

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        assets = [self._asset(c) for c in self.checks()]
        # Failing first (worst first), then by name: what needs eyes is on top.
        assets.sort(key=lambda a: (_RANK[a["state"]], a["name"]))
        summary = dict.fromkeys(STATES, 0)
        for a in assets:
            summary[a["state"]] += 1
        return {
            "title": self.title,
            "generated_at": now.isoformat(timespec="seconds"),
            "summary": summary,
            "assets": assets,
            "incidents": [self._incident(i, now) for i in self._open()],
        }

    def page(self, query: PageQuery | None = None) -> dict[str, Any]:
        """One page of `GET /`: the summary of every check, then the checks that match
        `query`, failing groups first and failing checks first in a group. Only the groups
        the page shows are sorted, and only its checks are read in full."""
        query = query or PageQuery()
        now = self.clock.now()
        counts = [0] * len(STATES)
        by_group: dict[str, list[tuple[int, str, CheckConfigBase]]] = {}
        every_group: set[str] = set()
        filtering = bool(query.q or query.state or query.group)
        state_of, rank_of = self.results.state, _ALERT_RANK
        for c in self.checks():
            st = state_of(c.name)
            rank = _UNKNOWN if st is None else rank_of.get(st.state, _UNKNOWN)
            counts[rank] += 1
            group = group_of(c)
            every_group.add(group)
            if filtering and not query.matches(STATES[rank], group, c):
                continue
            members = by_group.get(group)
            if members is None:
                members = by_group[group] = []
            members.append((rank, c.name, c))
        group_rank = {g: min(members)[0] for g, members in by_group.items()}
        order = sorted(by_group, key=lambda g: (group_rank[g], g))
        total = sum(len(m) for m in by_group.values())
        pages = max(1, math.ceil(total / query.per_page))
        number = min(query.page, pages)
        skip, room = (number - 1) * query.per_page, query.per_page
        by_check = self._incidents_by_check()
        descriptions = self.groups()
        groups: list[dict[str, Any]] = []
        for group in order:
            members = by_group[group]
            if skip >= len(members):
                skip -= len(members)
                continue
            if room <= 0:
                break
            members.sort()  # by state (worst first), then name
            shown = members[skip : skip + room]
            skip, room = 0, room - len(shown)
            info = descriptions.get(group)
            tally = dict.fromkeys(STATES, 0)
            for rank, _, _ in members:
                tally[STATES[rank]] += 1
            groups.append({
                "name": redact_text(group),
                "description": redact_text(info.description) if info else "",
                "state": STATES[group_rank[group]],
                "counts": tally,
                "assets": [
                    self._asset_row(c, STATES[rank], by_check.get(c.name, []))
                    for rank, _, c in shown
                ],
            })  # fmt: skip
        resolved = self._resolved()
        return {
            "title": redact_text(self.title),
            "generated_at": now.isoformat(timespec="seconds"),
            "history_at": self._history_at(),
            "summary": dict(zip(STATES, counts, strict=True)),
            "query": query,
            "all_groups": sorted(every_group | ({query.group} if query.group else set())),
            "groups": groups,
            "total": total,
            "page": number,
            "pages": pages,
            "incidents": [redact(self._incident(i, now)) for i in self._open()],
            "resolved": [self._resolved_row(i) for i in resolved[:RESOLVED_SHOWN]],
            "resolved_total": len(resolved),
        }

    def asset(self, name: str) -> dict[str, Any] | None:
        """The document of `GET /assets/{name}`; None for no such (enabled) check."""
        check = next((c for c in self.checks() if c.name == name), None)
        if check is None:
            return None
        now = self.clock.now()
        mine = self._incidents_by_check().get(name, [])
        row = self._asset_row(check, self._state(name), mine)
        summary = self.summaries.get(name) if self.summaries else None
        hours = summary.hour_list() if summary else []
        days = row["days"][-30:]
        slo = self._slo(name)
        return {
            "title": redact_text(self.title),
            "generated_at": now.isoformat(timespec="seconds"),
            "history_at": self._history_at(),
            "asset": {
                **row,
                "kind": check.kind,
                "group": redact_text(group_of(check)),
                "since": row["since"],
                "last_run": row["last_run"],
                "runs": self.results.recent_runs(name),
            },
            "hours": hours,
            "days30": days,
            "slo_html": slo,
            "open": [redact(self._incident(i, now)) for i in mine if i.is_open],
            "resolved": [self._resolved_row(i) for i in mine if not i.is_open],
        }

    def _slo(self, name: str) -> str | None:
        """The SLO block, if one is plugged in; one that fails leaves the page without it."""
        if self.slo_section is None:
            return None
        try:
            return self.slo_section(name)
        except Exception:
            log.exception("status_slo_section_failed", check=name)
            return None

    def _history_at(self) -> str | None:
        at = self.summaries.refreshed_at if self.summaries else None
        return at.isoformat(timespec="seconds") if at else None

    def _state(self, name: str) -> str:
        state = self.results.state(name)
        value = (state.state if state else AlertState.UNKNOWN).value
        return value if value in _RANK else "unknown"

    def _open(self) -> list[Incident]:
        if self.incidents is None:
            return []
        return sorted(
            self.incidents.open_incidents,
            key=lambda i: (i.severity.rank if i.severity else 9, i.opened_at),
        )

    def _resolved(self) -> list[Incident]:
        return list(self.summaries.resolved) if self.summaries else []

    def _incidents_by_check(self) -> dict[str, list[Incident]]:
        out: dict[str, list[Incident]] = {}
        for i in [*self._open(), *self._resolved()]:
            if i.check is not None:
                out.setdefault(i.check, []).append(i)
        return out

    def _asset(self, c: CheckConfigBase) -> dict[str, Any]:
        state = self.results.state(c.name)
        last = self.results.last_result(c.name)
        name = (state.state if state else AlertState.UNKNOWN).value
        return {
            "name": c.name,
            "kind": c.kind,
            "description": c.description or "",
            "tags": list(c.tags),
            "runbook": c.runbook,
            "state": name if name in _RANK else "unknown",
            # Blind: the monitor cannot see it; what it believed before, kept until it sees.
            "seen": state.seen.value if state and state.seen else None,
            "since": state.since.isoformat(timespec="seconds") if state and state.since else None,
            "message": last.message if last else "",
            "last_run": last.started_at.isoformat(timespec="seconds") if last else None,
            "runs": self.results.recent_runs(c.name),
            # Failing here, seen up by another replica: not down (`monitor.engine.confirm`).
            "disputed": _disputed(last),
        }

    def _asset_row(
        self, c: CheckConfigBase, state_name: str, incidents: Sequence[Incident]
    ) -> dict[str, Any]:
        """One asset as the pages show it, every text through the redaction layer."""
        state = self.results.state(c.name)
        last = self.results.last_result(c.name)
        summary = self.summaries.get(c.name) if self.summaries else None
        days = summary.day_list() if summary else []
        return {
            "name": redact_text(c.name),
            "path": "/assets/" + quote(c.name, safe=""),
            "description": redact_text(c.description or ""),
            "tags": [redact_text(t) for t in c.tags],
            "runbook": redact_text(c.runbook) if c.runbook else None,
            "state": state_name,
            "seen": state.seen.value if state and state.seen else None,
            "since": state.since.isoformat(timespec="seconds") if state and state.since else None,
            "message": redact_text(last.message) if last else "",
            "last_run": last.started_at.isoformat(timespec="seconds") if last else None,
            "uptime": summary.uptime() if summary else None,
            "days": [(d, _day_incidents(incidents, d)) for d in days],
            "runs": self.results.recent_runs(c.name),
            # Failing here, seen up by another replica: not down (`monitor.engine.confirm`).
            "disputed": _disputed(last),
        }

    def _incident(self, i: Incident, now: datetime) -> dict[str, Any]:
        return {
            "runbook": self.runbook_of(i),
            "id": i.id,
            "title": i.title,
            "severity": i.severity.value if i.severity else None,
            "status": i.status.value,
            "check": i.check,
            "opened_at": i.opened_at.isoformat(timespec="seconds"),
            "age_s": int((now - i.opened_at).total_seconds()),
            "assignee": i.assignee,
            "drill": i.drill,
        }

    def _resolved_row(self, i: Incident) -> dict[str, Any]:
        """A resolved incident as the public sees it: its public note, else its title."""
        end = i.resolved_at or i.updated_at
        return {
            "id": i.id,
            "check": redact_text(i.check) if i.check else None,
            "severity": i.severity.value if i.severity else None,
            "summary": redact_text(i.public_note or i.title),
            "opened_at": i.opened_at.isoformat(timespec="seconds"),
            "resolved_at": end.isoformat(timespec="seconds"),
            "duration_s": max(0, int((end - i.opened_at).total_seconds())),
            "drill": i.drill,
        }


def _day_incidents(incidents: Sequence[Incident], day: Day) -> list[str]:
    if not incidents:
        return []
    return [
        f"#{i.id} {i.severity.value if i.severity else 'untriaged'} "
        f"{redact_text(i.public_note or i.title)}"
        for i in overlapping(incidents, day.start, day.start + 86400)
    ]


# --- rendering -------------------------------------------------------------------------

_CSS = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:76rem;
padding:1rem 1.5rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:1.2rem 0 .3rem}
a{color:#0969da}.summary,.muted{color:#59636e}.summary b{color:#1f2328}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;vertical-align:top}
th{font-weight:600;color:#59636e;font-size:.85rem}
.state{font-weight:600;text-transform:uppercase;font-size:.8rem;white-space:nowrap}
.up .state{color:#1a7f37}.degraded .state{color:#9a6700}.down .state{color:#d1242f}
.unknown .state{color:#59636e}.blind .state{color:#8250df}
.bars,.days{display:flex;gap:1px;align-items:flex-end;height:1.4rem}
.bars{height:.9rem;margin-top:.25rem}
.bar,.day{display:inline-block;width:6px;height:100%;border-radius:1px;background:#d1d9e0}
.day{width:4px}
.bar.up,.day.up{background:#2da44e}.bar.degraded,.day.degraded{background:#d4a72c}
.bar.down,.day.down{background:#cf222e}.bar.blind,.day.blind{background:#8c959f}
.uptime{white-space:nowrap;font-variant-numeric:tabular-nums;font-size:.85rem}
.msg{color:#59636e;font-size:.85rem;overflow-wrap:anywhere}
.sev{font-weight:700}.P0{color:#d1242f}.P1{color:#bc4c00}.P2{color:#9a6700}
.none{color:#59636e}
tr.group th{font-size:.95rem;color:#1f2328;background:#f6f8fa;padding-top:.6rem}
tr.group .muted{font-weight:400}
form{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin:.5rem 0}
input,select,button{font:inherit;padding:.2rem .4rem}
.pages{display:flex;gap:.75rem;margin:.75rem 0}
.chart{width:100%;max-width:46rem;height:auto;display:block}
.figures{display:flex;gap:1.5rem;flex-wrap:wrap}.figures b{font-size:1.3rem}
"""


def _head(title: str, *, refresh: bool) -> list[str]:
    e = html.escape
    meta = '<meta http-equiv="refresh" content="30">' if refresh else ""
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        meta,
        '<link rel="icon" href="data:,">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
    ]


def render_html(doc: dict[str, Any]) -> str:
    """The main page for a `StatusView.page()` document. Every value is escaped."""
    e = html.escape
    s, query = doc["summary"], doc["query"]
    parts = [
        *_head(doc["title"], refresh=True),
        f"<h1>{e(doc['title'])}</h1>",
        f'<p class="summary" id="summary"><b>{s["down"]}</b> down · <b>{s["degraded"]}</b> degraded · '
        f"<b>{s['up']}</b> up · <b>{s['blind']}</b> blind (the monitor cannot see) · "
        f"<b>{s['unknown']}</b> not yet checked · "
        f'updated <time datetime="{e(doc["generated_at"])}">{e(doc["generated_at"])}</time></p>',
        "<h2>Open incidents</h2>",
    ]
    parts.append(_open_incidents(doc["incidents"]))
    parts.append("<h2>Assets</h2>")
    parts.append(_filter_form(query, doc["all_groups"]))
    parts.append(
        f'<p class="muted" id="matching">{doc["total"]} matching · page {doc["page"]} of '
        f"{doc['pages']}{_history_note(doc)}</p>"
    )
    parts.append(
        '<table id="assets"><thead><tr><th>Asset</th><th>State</th>'
        f"<th>Last {DAYS} days · last {RUNS} runs</th><th>Uptime</th><th>Latest</th>"
        "</tr></thead><tbody>"
    )
    for g in doc["groups"]:
        c = g["counts"]
        failing = c["down"] + c["degraded"]
        desc = f' <span class="muted">{e(g["description"])}</span>' if g["description"] else ""
        parts.append(
            f'<tr class="group {g["state"]}" data-group="{e(g["name"])}"><th colspan="5">'
            f'{e(g["name"])}{desc} <span class="muted">· {failing} failing of '
            f"{sum(c.values())}</span></th></tr>"
        )
        for a in g["assets"]:
            parts.append(_asset_tr(a))
    if not doc["groups"]:
        parts.append('<tr><td colspan="5" class="none" id="no-assets">No asset matches.</td></tr>')
    parts.append("</tbody></table>")
    parts.append(_pagination(query, doc["page"], doc["pages"]))
    parts.append(f"<h2>Resolved incidents (last {DAYS} days)</h2>")
    parts.append(_resolved_table(doc["resolved"], doc.get("resolved_total", 0)))
    parts.append("</body></html>")
    return "".join(parts)


def _history_note(doc: dict[str, Any]) -> str:
    if doc.get("history_at") is None:
        return " · history not read yet"
    return ""


def _open_incidents(incidents: list[dict[str, Any]]) -> str:
    e = html.escape
    if not incidents:
        return '<p class="none" id="no-incidents">No open incidents.</p>'
    parts = [
        '<table id="incidents"><thead><tr><th>Severity</th><th>Incident</th><th>Status</th>'
        "<th>Age</th><th>Owner</th></tr></thead><tbody>"
    ]
    for i in incidents:
        sev = i["severity"] or "untriaged"
        drill = "DRILL " if i["drill"] else ""
        runbook = f' <a href="{e(i["runbook"])}" rel="noopener">runbook</a>' if i["runbook"] else ""
        parts.append(
            f'<tr class="incident" data-id="{i["id"]}"><td class="sev {e(sev)}">{e(sev)}</td>'
            f"<td>#{i['id']} {e(drill)}{e(i['title'])}{runbook}</td><td>{e(i['status'])}</td>"
            f"<td>{_age(i['age_s'])}</td><td>{e(i['assignee'] or '—')}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _resolved_table(rows: list[dict[str, Any]], total: int) -> str:
    e = html.escape
    if not rows:
        return f'<p class="none" id="no-resolved">No incident resolved in the last {DAYS} days.</p>'
    parts = [
        '<table id="resolved"><thead><tr><th>Severity</th><th>Incident</th><th>Asset</th>'
        "<th>Resolved</th><th>Duration</th></tr></thead><tbody>"
    ]
    for r in rows:
        sev = r["severity"] or "untriaged"
        drill = "DRILL " if r["drill"] else ""
        check = (
            f'<a href="/assets/{quote(r["check"], safe="")}">{e(r["check"])}</a>'
            if r["check"]
            else "—"
        )
        parts.append(
            f'<tr class="resolved" data-id="{r["id"]}"><td class="sev {e(sev)}">{e(sev)}</td>'
            f"<td>#{r['id']} {e(drill)}{e(r['summary'])}</td><td>{check}</td>"
            f'<td><time datetime="{e(r["resolved_at"])}">{e(r["resolved_at"][:16])}</time></td>'
            f'<td class="duration">{_age(r["duration_s"])}</td></tr>'
        )
    parts.append("</tbody></table>")
    if total > len(rows):
        parts.append(f'<p class="muted">The latest {len(rows)} of {total}.</p>')
    return "".join(parts)


def _filter_form(query: PageQuery, groups: list[str]) -> str:
    e = html.escape
    states = [("", "any state"), ("failing", "failing"), *((s, s) for s in STATES)]
    state_opts = "".join(
        f'<option value="{v}"{" selected" if v == query.state else ""}>{label}</option>'
        for v, label in states
    )
    group_opts = '<option value="">all groups</option>' + "".join(
        f'<option value="{e(g)}"{" selected" if g == query.group else ""}>{e(g)}</option>'
        for g in groups
    )
    per_page = (
        f'<input type="hidden" name="per_page" value="{query.per_page}">'
        if query.per_page != PER_PAGE
        else ""
    )
    return (
        '<form method="get" action="/" id="filter" role="search">'
        f'<input type="search" name="q" value="{e(query.q)}" placeholder="name, description or tag"'
        f' aria-label="search" maxlength="{MAX_QUERY}">'
        f'<select name="state" aria-label="state">{state_opts}</select>'
        f'<select name="group" aria-label="group">{group_opts}</select>'
        f'{per_page}<button type="submit">Filter</button> <a href="/">clear</a></form>'
    )


def _pagination(query: PageQuery, number: int, pages: int) -> str:
    if pages <= 1:
        return ""
    e = html.escape
    parts = ['<nav class="pages" id="pages" aria-label="pages">']
    if number > 1:
        parts.append(f'<a rel="prev" href="{e(query.link(page=number - 1))}">← previous</a>')
    parts.append(f"<span>page {number} of {pages}</span>")
    if number < pages:
        parts.append(f'<a rel="next" href="{e(query.link(page=number + 1))}">next →</a>')
    parts.append("</nav>")
    return "".join(parts)


def _asset_tr(a: dict[str, Any]) -> str:
    e = html.escape
    name = f'<a href="{e(a["path"])}">{e(a["name"])}</a>'
    if a["runbook"]:
        name += f' <a href="{e(a["runbook"])}" rel="noopener">runbook</a>'
    desc = f'<div class="msg">{e(a["description"])}</div>' if a["description"] else ""
    was = f' <span class="seen">(was {e(a["seen"])})</span>' if a.get("seen") else ""
    if a.get("disputed"):
        was += f' <span class="disputed" title="{e(a["disputed"])}">(disputed)</span>'
    return (
        f'<tr class="asset {a["state"]}" data-name="{e(a["name"])}"><td>{name}{desc}</td>'
        f'<td class="state">{a["state"]}{was}</td><td>{_day_bar(a["days"])}{_run_bars(a["runs"])}</td>'
        f'<td class="uptime">{_uptime_text(a["uptime"], ("24h", "30d", "90d"))}</td>'
        f'<td class="msg">{e(a["message"])}</td></tr>'
    )


def _uptime_text(uptime: dict[str, float | None] | None, windows: Iterable[str]) -> str:
    if uptime is None:
        return '<span class="muted">no history yet</span>'
    return "<br>".join(f'<span data-window="{w}">{w} {_percent(uptime[w])}</span>' for w in windows)


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 100:
        return "100%"
    return f"{math.floor(value * 100) / 100:.2f}%"  # never rounded up to 100 %


def _run_bars(runs: list[dict[str, Any]]) -> str:
    e = html.escape
    bars = "".join(
        f'<span class="bar {r["outcome"]}" title="{e(r["at"])} {r["outcome"]} '
        f'{r["duration_ms"]:g} ms"></span>'
        for r in runs
    )
    return f'<div class="bars">{bars}</div>'


def _day_bar(days: list[tuple[Day, list[str]]]) -> str:
    """One element per day, oldest first, its title the date, its uptime and incidents."""
    if not days:
        return ""
    parts = ['<div class="days">']
    for d, incidents in days:
        status = d.status
        if status == "empty":
            text = f"{_date(d.start)} · no data"
        elif status == "blind":
            text = f"{_date(d.start)} · not observed (blind)"
        else:
            text = f"{_date(d.start)} · {_percent(d.uptime)} uptime"
        if incidents:
            text = html.escape(text + " · " + "; ".join(incidents))
        parts.append(f'<span class="day {status}" title="{text}"></span>')
    parts.append("</div>")
    return "".join(parts)


@functools.lru_cache(maxsize=512)
def _date(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d")


def render_asset(doc: dict[str, Any]) -> str:
    """The page of one asset for a `StatusView.asset()` document. Every value is escaped
    (the SLO block is HTML its maker escaped)."""
    e = html.escape
    a = doc["asset"]
    was = f' <span class="seen">(was {e(a["seen"])})</span>' if a.get("seen") else ""
    if a.get("disputed"):
        was += f' <span class="disputed" title="{e(a["disputed"])}">(disputed)</span>'
    since = f' since <time datetime="{e(a["since"])}">{e(a["since"])}</time>' if a["since"] else ""
    runbook = f' · <a href="{e(a["runbook"])}" rel="noopener">runbook</a>' if a["runbook"] else ""
    tags = f" · tags: {e(', '.join(a['tags']))}" if a["tags"] else ""
    parts = [
        *_head(f"{a['name']} · {doc['title']}", refresh=True),
        f'<p><a href="/">← {e(doc["title"])}</a></p>',
        f'<h1 id="asset-name">{e(a["name"])}</h1>',
        f'<p class="muted">{e(a["description"])}</p>' if a["description"] else "",
        f'<p class="muted">{e(a["kind"])} · group {e(a["group"])}{tags}{runbook}</p>',
        f'<p class="{a["state"]}" id="current"><span class="state">{a["state"]}</span>{was}{since}'
        f' <span class="msg">{e(a["message"])}</span></p>',
        "<h2>Uptime</h2>",
        '<div class="figures" id="uptime">',
    ]
    for w in ("24h", "7d", "30d", "90d"):
        value = _percent(a["uptime"][w]) if a["uptime"] else "—"
        parts.append(
            f'<div data-window="{w}"><b>{value}</b><br><span class="muted">{w}</span></div>'
        )
    parts.append("</div>")
    parts.append(f"<h3>Last {DAYS} days</h3>{_day_bar(a['days'])}")
    parts.append(f"<h3>Last {RUNS} runs</h3>{_run_bars(a['runs'])}")
    parts.append("<h2>Response time</h2>")
    hours: list[Hour] = doc["hours"]
    parts.append("<h3>Last 24 hours (per hour)</h3>")
    parts.append(
        _chart("chart-24h", "response time per hour, last 24 hours",
               [(datetime.fromtimestamp(h.start, UTC).strftime("%H:00"), h.p50, h.p95)
                for h in hours])
    )  # fmt: skip
    days: list[tuple[Day, list[str]]] = doc["days30"]
    parts.append("<h3>Last 30 days (per day)</h3>")
    parts.append(
        _chart("chart-30d", "response time per day, last 30 days",
               [(datetime.fromtimestamp(d.start, UTC).strftime("%m-%d"), d.p50, d.p95)
                for d, _ in days])
    )  # fmt: skip
    # The SLO block (error budget, burn rates) when one is plugged in: `slo_section`.
    if doc.get("slo_html"):
        parts.append(
            f'<section id="slo"><h2>Service level objective</h2>{doc["slo_html"]}</section>'
        )
    parts.append("<h2>Open incidents</h2>")
    parts.append(_open_incidents(doc["open"]))
    parts.append(f"<h2>Resolved incidents (last {DAYS} days)</h2>")
    parts.append(_resolved_table(doc["resolved"], len(doc["resolved"])))
    parts.append("</body></html>")
    return "".join(parts)


def render_not_found(title: str, name: str) -> str:
    e = html.escape
    return "".join([
        *_head(f"Not found · {title}", refresh=False),
        f'<h1>No such asset</h1><p id="not-found">No asset is named “{e(name)}”.</p>',
        f'<p><a href="/">← {e(title)}</a></p></body></html>',
    ])  # fmt: skip


_W, _H, _LEFT, _BOTTOM, _TOP = 600, 170, 48, 20, 20


def _chart(ident: str, label: str, points: list[tuple[str, float | None, float | None]]) -> str:
    """A line chart of p50 and p95 latency as inline SVG: gaps where no run was timed,
    a `title` per slot with its values, the y axis in ms."""
    e = html.escape
    values = [v for _, p50, p95 in points for v in (p50, p95) if v is not None]
    head = (
        f'<svg class="chart" id="{ident}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{e(label)}" xmlns="http://www.w3.org/2000/svg"><title>{e(label)}</title>'
    )
    if not values or not points:
        return (
            f'{head}<text x="{_W // 2}" y="{_H // 2}" text-anchor="middle" fill="#59636e" '
            'font-size="14" class="no-data">no timed runs</text></svg>'
        )
    top = _nice(max(values))
    plot_w, plot_h = _W - _LEFT - 4, _H - _BOTTOM - _TOP
    step = plot_w / max(1, len(points) - 1) if len(points) > 1 else 0.0

    def x(n: int) -> float:
        return _LEFT + n * step if len(points) > 1 else _LEFT + plot_w / 2

    def y(v: float) -> float:
        return _TOP + plot_h - plot_h * min(v, top) / top

    parts = [head]
    for frac in (0.0, 0.5, 1.0):
        gy = y(top * frac)
        parts.append(
            f'<line x1="{_LEFT}" y1="{gy:.1f}" x2="{_W - 4}" y2="{gy:.1f}" stroke="#d1d9e0"/>'
            f'<text x="{_LEFT - 4}" y="{gy + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#59636e">{_ms(top * frac)}</text>'
        )
    every = max(1, len(points) // 6)
    for n, (when, _, _) in enumerate(points):
        if n % every == 0:
            parts.append(
                f'<text x="{x(n):.1f}" y="{_H - 4}" text-anchor="middle" font-size="11" '
                f'fill="#59636e">{e(when)}</text>'
            )
    for index, colour, name in ((1, "#d4a72c", "p95"), (0, "#0969da", "p50")):
        path, pen = [], "M"
        for n, (_, p50, p95) in enumerate(points):
            v = (p50, p95)[index]
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x(n):.1f} {y(v):.1f}")
            pen = "L"
        parts.append(
            f'<path class="{name}" d="{" ".join(path)}" fill="none" stroke="{colour}" '
            'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    half = step / 2 if len(points) > 1 else plot_w / 2
    for n, (when, p50, p95) in enumerate(points):
        text = f"{when}: p50 {_ms(p50)}, p95 {_ms(p95)}" if p50 is not None else f"{when}: no data"
        parts.append(
            f'<rect x="{x(n) - half:.1f}" y="{_TOP}" width="{2 * half:.1f}" height="{plot_h}" '
            f'fill="transparent"><title>{e(text)}</title></rect>'
        )
    parts.append(
        f'<text x="{_W - 4}" y="11" text-anchor="end" font-size="11">'
        '<tspan fill="#0969da">p50</tspan> <tspan fill="#d4a72c">p95</tspan></text></svg>'
    )
    return "".join(parts)


def _nice(v: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1 ms)."""
    v = max(v, 1.0)
    power = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * power >= v:
            return float(m * power)
    return float(10 * power)


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1000:g} s" if v >= 1000 else f"{v:g} ms"


def _age(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


# --- routes ----------------------------------------------------------------------------


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP},
    )  # fmt: skip


def routes(view: StatusView) -> dict[str, Callable[[web.Request], Any]]:
    """`GET /`, `GET /assets/{name}` and `GET /api/status`, by path."""

    async def page(request: web.Request) -> web.Response:
        query = PageQuery.parse(request.query)  # a bad query is refused before any work
        await view.refresh()
        return _html(render_html(view.page(query)))

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await view.refresh()
        doc = view.asset(name)
        if doc is None:
            return _html(render_not_found(redact_text(view.title), redact_text(name)), 404)
        return _html(render_asset(doc))

    async def status(_request: web.Request) -> web.Response:
        await view.refresh()
        return web.json_response(redact(view.snapshot()), headers={"Cache-Control": "no-store"})

    return {"/": page, "/assets/{name}": asset, "/api/status": status}


def _disputed(last: CheckResult | None) -> str | None:
    """Why the last run's failure is disputed: another replica saw the check up. Which
    replica (host names) is for the logs and the incident's timeline, not this page."""
    found = last.details.get("confirmation") if last is not None else None
    if not isinstance(found, dict) or found.get("outcome") != "refuted":
        return None
    for seen in found.get("replicas") or []:
        if isinstance(seen, dict) and seen.get("seen") in ("up", "degraded"):
            return redact_text(f"another replica sees it {seen['seen']}: {seen.get('message', '')}")
    return "another replica sees it up"
