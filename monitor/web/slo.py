"""What the asset page and the history API say of a check's SLOs (`engine.slo`): its own
objective and its group's, with target, window, the error budget left and the burn rates.

`slo_fragment(evaluator, check)` is an HTML fragment (a `<section>`, every name escaped,
no script, no style attribute) for `/assets/{name}`; `slo_json(evaluator)` gives, per
check, the list that `GET /api/assets/{name}/history` answers under `slo`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor.core.configtypes import format_duration
from monitor.engine.slo import BURN_CAP, BURN_WINDOWS, Objective, SloEvaluator, SloReading

__all__ = ["render_slo", "slo_fragment", "slo_json"]


def slo_json(evaluator: SloEvaluator) -> Callable[[str], list[dict[str, Any]]]:
    """Per check, its objectives as JSON: the latest reading, or the objective alone
    (figures null) before its first evaluation."""

    def answer(check: str) -> list[dict[str, Any]]:
        readings = {r.objective.key: r for r in evaluator.readings(check)}
        return [_json(o, readings.get(o.key)) for o in evaluator.objectives_of(check)]

    return answer


def _json(o: Objective, reading: SloReading | None) -> dict[str, Any]:
    if reading is not None and reading.objective == o:
        return reading.to_json()
    return {
        "name": o.name, "scope": o.scope, "target_percent": round(o.slo.target * 100, 6),
        "window": format_duration(o.slo.window), "at": None, "runs": 0, "bad_runs": 0,
        "error_budget_remaining": None, "burn_rate": dict.fromkeys(BURN_WINDOWS), "burning": None,
    }  # fmt: skip


def slo_fragment(evaluator: SloEvaluator, check: str) -> str:
    """The asset page's SLO section for `check`; empty when it counts in no SLO."""
    readings = {r.objective.key: r for r in evaluator.readings(check)}
    return render_slo(evaluator.objectives_of(check), readings)


def render_slo(objectives: Sequence[Objective], readings: Mapping[str, SloReading]) -> str:
    """The section for these objectives (readings by objective key)."""
    if not objectives:
        return ""
    e = html.escape
    parts = ['<section class="slo" id="slo"><h2>Service level objectives</h2>']
    for o in objectives:
        r = readings.get(o.key)
        if r is not None and r.objective != o:
            r = None  # the objective changed since: its figures are not yet known
        whose = "this asset" if o.scope == "check" else f"group {o.name}"
        burning = ""
        if r is not None and r.level is not None:
            burning = f' <span class="burning {r.level}">burning {r.level}</span>'
        parts.append(
            f'<div class="objective {o.scope}" data-slo="{e(o.name)}" data-scope="{o.scope}">'
            f"<h3>{e(whose)}: {o.slo.target * 100:g}% over {format_duration(o.slo.window)}"
            f"{burning}</h3>"
        )
        if r is None:
            parts.append('<p class="pending">Not evaluated yet.</p></div>')
            continue
        if r.remaining is None:
            left = "no runs in the window yet"
        else:
            left = f"{_percent(r.remaining)} of the error budget left"
        runs = f"{r.bad:,} of {r.good + r.bad:,} runs down"
        parts.append(f'<p class="budget">{e(left)} ({runs})</p><table class="burn"><tr>')
        parts.append("".join(f"<th>{w}</th>" for w in BURN_WINDOWS))
        parts.append("</tr><tr><td>" + "</td><td>".join(_rate(r.burn[w]) for w in BURN_WINDOWS))
        parts.append("</td></tr></table><p class=\"note\">Burn rate: 1x spends the budget "
                     "exactly over the window.</p></div>")  # fmt: skip
    parts.append("</section>")
    return "".join(parts)


def _percent(ratio: float) -> str:
    return f"{max(ratio, -99.99) * 100:.1f}%"


def _rate(rate: float | None) -> str:
    if rate is None:
        return "no data"
    if rate >= BURN_CAP:
        return "budget is zero"
    return f"{rate:.1f}x"
