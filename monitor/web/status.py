"""The status page: every asset with its state and recent runs, and the open incidents.

The recent runs are the pipeline's `RunHistory` records (`monitor.engine.history`).
`StatusView.snapshot()` builds the document of `GET /api/status` from memory only (no
store reads); `render_html` turns it into the page at `GET /`, server-rendered, with no
script and nothing loaded from elsewhere.

Nothing secret is shown: check names, kinds, descriptions, tags, runbook links, states and
the one-line messages that pages carry too; never URLs with credentials, headers, tokens,
notifier settings or result details.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.core.alertstate import AlertState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult, Incident
from monitor.engine.history import RUNS, CheckReadings

if TYPE_CHECKING:
    from monitor.incidents.manager import IncidentManager

__all__ = ["StatusView", "render_html"]


@dataclass(slots=True)
class StatusView:
    """What the status page reads: the checks, their state and history, the incidents."""

    title: str
    clock: Clock
    checks: Callable[[], Sequence[CheckConfigBase]]
    results: CheckReadings
    incidents: IncidentManager | None
    runbook_of: Callable[[Incident], str | None] = lambda _incident: None

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        assets = [self._asset(c) for c in self.checks()]
        # Failing first (worst first), then by name: what needs eyes is on top.
        rank = {"down": 0, "degraded": 1, "blind": 2, "unknown": 3, "up": 4}
        assets.sort(key=lambda a: (rank[a["state"]], a["name"]))
        summary = dict.fromkeys(("down", "degraded", "blind", "unknown", "up"), 0)
        for a in assets:
            summary[a["state"]] += 1
        return {
            "title": self.title,
            "generated_at": now.isoformat(timespec="seconds"),
            "summary": summary,
            "assets": assets,
            "incidents": [self._incident(i, now) for i in self._open()],
        }

    def _open(self) -> Iterable[Incident]:
        if self.incidents is None:
            return []
        return sorted(
            self.incidents.open_incidents,
            key=lambda i: (i.severity.rank if i.severity else 9, i.opened_at),
        )

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
            "state": name if name in ("up", "down", "degraded", "blind") else "unknown",
            # Blind: the monitor cannot see it; what it believed before, kept until it sees.
            "seen": state.seen.value if state and state.seen else None,
            "since": state.since.isoformat(timespec="seconds") if state and state.since else None,
            "message": last.message if last else "",
            "last_run": last.started_at.isoformat(timespec="seconds") if last else None,
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


_CSS = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:72rem;
padding:1rem 1.5rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.summary{color:#59636e}.summary b{color:#1f2328}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;vertical-align:top}
th{font-weight:600;color:#59636e;font-size:.85rem}
.state{font-weight:600;text-transform:uppercase;font-size:.8rem;white-space:nowrap}
.up .state{color:#1a7f37}.degraded .state{color:#9a6700}.down .state{color:#d1242f}
.unknown .state{color:#59636e}.blind .state{color:#8250df}
.bars{display:flex;gap:2px;align-items:flex-end;height:1.4rem}
.bar{display:inline-block;width:6px;height:100%;border-radius:1px;background:#d1d9e0}
.bar.up{background:#2da44e}.bar.degraded{background:#d4a72c}.bar.down{background:#cf222e}
.bar.blind{background:#8c959f}
.msg{color:#59636e;font-size:.85rem;overflow-wrap:anywhere}
.sev{font-weight:700}.P0{color:#d1242f}.P1{color:#bc4c00}.P2{color:#9a6700}
.none{color:#59636e}
"""


def render_html(doc: dict[str, Any]) -> str:
    """The status page for a `StatusView.snapshot()` document. Every value is escaped."""
    e = html.escape
    s = doc["summary"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<meta http-equiv="refresh" content="30">',
        '<link rel="icon" href="data:,">',
        f"<title>{e(doc['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['title'])}</h1>",
        f'<p class="summary" id="summary"><b>{s["down"]}</b> down · <b>{s["degraded"]}</b> degraded · '
        f"<b>{s['up']}</b> up · <b>{s['blind']}</b> blind (the monitor cannot see) · "
        f"<b>{s['unknown']}</b> not yet checked · "
        f'updated <time datetime="{e(doc["generated_at"])}">{e(doc["generated_at"])}</time></p>',
        "<h2>Open incidents</h2>",
    ]
    incidents = doc["incidents"]
    if not incidents:
        parts.append('<p class="none" id="no-incidents">No open incidents.</p>')
    else:
        parts.append(
            '<table id="incidents"><thead><tr><th>Severity</th><th>Incident</th><th>Status</th>'
            "<th>Age</th><th>Owner</th></tr></thead><tbody>"
        )
        for i in incidents:
            sev = i["severity"] or "untriaged"
            drill = "DRILL " if i["drill"] else ""
            runbook = (
                f' <a href="{e(i["runbook"])}" rel="noopener">runbook</a>' if i["runbook"] else ""
            )
            parts.append(
                f'<tr class="incident" data-id="{i["id"]}"><td class="sev {e(sev)}">{e(sev)}</td>'
                f"<td>#{i['id']} {e(drill)}{e(i['title'])}{runbook}</td><td>{e(i['status'])}</td>"
                f"<td>{_age(i['age_s'])}</td><td>{e(i['assignee'] or '—')}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append(
        '<h2>Assets</h2><table id="assets"><thead><tr><th>Asset</th><th>State</th>'
        f"<th>Last {RUNS} runs</th><th>Latest</th></tr></thead><tbody>"
    )
    for a in doc["assets"]:
        bars = "".join(
            f'<span class="bar {r["outcome"]}" title="{e(r["at"])} {r["outcome"]} '
            f'{r["duration_ms"]:g} ms"></span>'
            for r in a["runs"]
        )
        name = e(a["name"])
        if a["runbook"]:
            name += f' <a href="{e(a["runbook"])}" rel="noopener">runbook</a>'
        desc = f'<div class="msg">{e(a["description"])}</div>' if a["description"] else ""
        was = f' <span class="seen">(was {e(a["seen"])})</span>' if a.get("seen") else ""
        if a.get("disputed"):
            was += f' <span class="disputed" title="{e(a["disputed"])}">(disputed)</span>'
        parts.append(
            f'<tr class="asset {a["state"]}" data-name="{e(a["name"])}"><td>{name}{desc}</td>'
            f'<td class="state">{a["state"]}{was}</td><td><div class="bars">{bars}</div></td>'
            f'<td class="msg">{e(a["message"])}</td></tr>'
        )
    parts.append("</tbody></table></body></html>")
    return "".join(parts)


def _disputed(last: CheckResult | None) -> str | None:
    """Why the last run's failure is disputed: another replica saw the check up. Which
    replica (host names) is for the logs and the incident's timeline, not this page."""
    found = last.details.get("confirmation") if last is not None else None
    if not isinstance(found, dict) or found.get("outcome") != "refuted":
        return None
    for seen in found.get("replicas") or []:
        if isinstance(seen, dict) and seen.get("seen") in ("up", "degraded"):
            return f"another replica sees it {seen['seen']}: {seen.get('message', '')}"
    return "another replica sees it up"


def _age(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
