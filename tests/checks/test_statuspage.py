"""`kind: statuspage` against a local page serving GitHub's captured `summary.json`."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.checks import CheckContext
from monitor.checks.statuspage import (
    StatuspageCheck,
    StatuspageCheckConfig,
    StatusSummary,
    judge_summary,
    parse_summary,
)
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Observation, Outcome
from tests.fuzz import ANY_JSON, mutate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "statuspage"
HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
INCIDENT = "Disruption with some GitHub services"
GITHUB_COMPONENTS = (
    "Git Operations, API Requests, Webhooks, Issues, PRs, Projects, Actions, Packages, Pages, Other"
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


CALM = load("githubstatus-summary-captured-2019.json")  # all operational, 2019 names
INCIDENT_DOC = load("githubstatus-summary-actions-incident-derived.json")  # Actions degraded


def component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["components"] if c["name"] == name)
    return found


class FakePage:
    """A Statuspage serving `doc` at `/api/v2/summary.json`, or a forced raw answer."""

    def __init__(self) -> None:
        self.doc: Any = copy.deepcopy(INCIDENT_DOC)
        self.forced: tuple[int, bytes, str, dict[str, str]] | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hang = False
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v2/summary.json", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        if self.hang:
            await asyncio.Event().wait()
        if self.forced is not None:
            status, body, ctype, headers = self.forced
            return web.Response(status=status, body=body, content_type=ctype, headers=headers)
        return web.json_response(self.doc)


@pytest.fixture
async def page(aiohttp_server) -> FakePage:
    fake = FakePage()
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def check_for(page, session):
    def build(*components: str, **fields: Any) -> StatuspageCheck:
        fields.setdefault("url", page.base)
        fields.setdefault("timeout", "5s")
        config = StatuspageCheckConfig(
            name="t", kind="statuspage", components=list(components), **fields
        ).resolved(Defaults())
        return StatuspageCheck(config, CheckContext(session=session, clock=SystemClock()))

    return build


class TestComponents:
    async def test_operational(self, page, check_for) -> None:
        page.doc = copy.deepcopy(CALM)
        obs = await check_for("GitHub Actions").run()
        assert (obs.outcome, obs.failure) == (Outcome.UP, None)
        assert obs.message == "GitHub Actions: operational"
        assert obs.details == {
            "components": {"GitHub Actions": "operational"},
            "indicator": "none",
            "incidents": [],
        }

    async def test_degraded_with_incident(self, check_for) -> None:
        obs = await check_for("Actions").run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.UPSTREAM_DEGRADED)
        assert obs.message == f"Actions: degraded performance (incident: {INCIDENT})"
        assert obs.details == {
            "components": {"Actions": "degraded_performance"},
            "indicator": "minor",
            "incidents": [INCIDENT],
        }

    async def test_by_id_and_in_any_case(self, check_for) -> None:
        obs = await check_for("br0l2tvcx85d", "git operations").run()
        assert obs.outcome is Outcome.DEGRADED
        assert obs.message == f"Actions: degraded performance (incident: {INCIDENT})"
        assert obs.details["components"] == {
            "Actions": "degraded_performance",
            "Git Operations": "operational",
        }

    @pytest.mark.parametrize(
        ("status", "outcome", "words"),
        [
            ("operational", Outcome.UP, "operational"),
            ("degraded_performance", Outcome.DEGRADED, "degraded performance"),
            ("under_maintenance", Outcome.DEGRADED, "under maintenance"),
            ("partial_outage", Outcome.DOWN, "partial outage"),
            ("major_outage", Outcome.DOWN, "major outage"),
        ],
    )
    async def test_each_status(self, page, check_for, status, outcome, words) -> None:
        component(page.doc, "Pages")["status"] = status
        obs = await check_for("Pages").run()
        assert obs.outcome is outcome
        assert obs.failure is (None if outcome is Outcome.UP else FailureKind.UPSTREAM_DEGRADED)
        # The incident names Actions only, so a Pages check does not quote it.
        assert obs.message == f"Pages: {words}"
        assert obs.details["incidents"] == [INCIDENT]

    async def test_worst_component_wins(self, page, check_for) -> None:
        component(page.doc, "Pages")["status"] = "major_outage"
        obs = await check_for("Actions", "Pages", "Webhooks").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UPSTREAM_DEGRADED)
        assert obs.message == (
            f"Actions: degraded performance; Pages: major outage (incident: {INCIDENT})"
        )

    async def test_incident_naming_no_component_is_shown(self, page, check_for) -> None:
        page.doc["incidents"][0]["components"] = []
        component(page.doc, "Actions")["status"] = "operational"
        obs = await check_for("Pages").run()
        assert obs.outcome is Outcome.UP
        assert obs.message == f"Pages: operational (incident: {INCIDENT})"

    async def test_resolved_incidents_are_skipped(self, page, check_for) -> None:
        page.doc["incidents"][0]["status"] = "resolved"
        obs = await check_for("Actions").run()
        assert obs.message == "Actions: degraded performance"
        assert obs.details["incidents"] == []

    async def test_missing_component(self, check_for) -> None:
        obs = await check_for("Actions", "Copilot").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.SCHEMA)
        assert obs.message == f"component 'Copilot' not on the page; it has: {GITHUB_COMPONENTS}"

    async def test_placeholder_is_ignored(self, check_for) -> None:
        obs = await check_for("Visit www.githubstatus.com for more information").run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message.startswith(
            "component 'Visit www.githubstatus.com for more information' not on the page"
        )

    async def test_ambiguous_name(self, page, check_for) -> None:
        twin = copy.deepcopy(component(page.doc, "Actions")) | {"id": "twin00000000"}
        page.doc["components"].append(twin)
        obs = await check_for("actions").run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "component 'actions' is ambiguous on the page (ids br0l2tvcx85d, twin00000000); name it by id",
        )
        assert (await check_for("twin00000000").run()).outcome is Outcome.DEGRADED

    async def test_unknown_status(self, page, check_for) -> None:
        component(page.doc, "Actions")["status"] = "on_fire"
        obs = await check_for("Actions").run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "component 'Actions' has an unknown status 'on_fire'",
        )


class TestWholePage:
    async def test_all_operational(self, page, check_for) -> None:
        page.doc = copy.deepcopy(CALM)
        obs = await check_for().run()
        assert (obs.outcome, obs.message) == (Outcome.UP, "GitHub: All Systems Operational")
        assert obs.details == {"components": {}, "indicator": "none", "incidents": []}

    async def test_minor(self, check_for) -> None:
        obs = await check_for().run()
        assert (obs.outcome, obs.failure) == (Outcome.DEGRADED, FailureKind.UPSTREAM_DEGRADED)
        assert (
            obs.message == f"GitHub: Minor Service Outage (indicator minor; incident: {INCIDENT})"
        )
        assert obs.details["components"] == {"Actions": "degraded_performance"}

    @pytest.mark.parametrize("indicator", ["major", "critical"])
    async def test_major(self, page, check_for, indicator: str) -> None:
        page.doc["status"] = {"indicator": indicator, "description": "Major Service Outage"}
        obs = await check_for().run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UPSTREAM_DEGRADED)
        assert obs.message.startswith(f"GitHub: Major Service Outage (indicator {indicator}; ")

    async def test_unknown_indicator(self, page, check_for) -> None:
        page.doc["status"]["indicator"] = "purple"
        obs = await check_for().run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "status page has an unknown indicator 'purple'",
        )


class TestUpstreamFailures:
    async def test_request(self, page, check_for) -> None:
        await check_for("Actions", url=page.base + "/").run()
        [(path, headers)] = page.requests
        assert (path, headers["Accept"]) == ("/api/v2/summary.json", "application/json")

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_server_error(self, page, check_for, status: int) -> None:
        page.forced = (status, HTML, "text/html", {})
        obs = await check_for("Actions").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message.startswith(f"status page unavailable: {status} ")

    async def test_rate_limited(self, page, check_for) -> None:
        page.forced = (429, b"{}", "application/json", {"Retry-After": "90"})
        obs = await check_for("Actions").run()
        assert (obs.failure, obs.details["retry_after_s"]) == (FailureKind.RATE_LIMITED, 90)
        assert (
            obs.message == "status page rate limit reached (429 Too Many Requests); retry after 90s"
        )

    async def test_html_instead_of_json(self, page, check_for) -> None:
        page.forced = (200, HTML, "text/html", {})
        obs = await check_for("Actions").run()
        assert (obs.failure, obs.message) == (
            FailureKind.SCHEMA,
            "status page answered 200 with text/html instead of JSON",
        )

    async def test_truncated_json(self, page, check_for) -> None:
        page.forced = (200, json.dumps(CALM).encode()[:500], "application/json", {})
        obs = await check_for("Actions").run()
        assert obs.failure is FailureKind.SCHEMA
        assert obs.message.startswith("status page answered 200 with malformed JSON")

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda d: d.update(components={"Actions": "operational"}), "status page answer has no components list"),
            (lambda d: d.update(status="ok"), "status page answer has no status.indicator string"),
            (lambda d: d["components"][5].update(status=None), "status page components[5] has no id, name or status string"),
            (lambda d: d.update(incidents=None), "status page incidents is not a list"),
            (lambda d: d["incidents"][0].pop("name"), "status page incidents[0] has no name string"),
            (lambda d: d.clear(), "status page answer has no status.indicator string"),
        ],
    )  # fmt: skip
    async def test_wrong_typed_fields(self, page, check_for, mutate, message) -> None:
        mutate(page.doc)
        obs = await check_for("Actions").run()
        assert (obs.outcome, obs.failure, obs.message) == (
            Outcome.DOWN,
            FailureKind.SCHEMA,
            message,
        )

    async def test_not_an_object(self, page, check_for) -> None:
        page.doc = ["components"]
        obs = await check_for("Actions").run()
        assert obs.message == "status page answer is not a JSON object"

    async def test_timeout(self, page, check_for) -> None:
        page.hang = True
        obs = await check_for("Actions", timeout="50ms").run()
        assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
        assert obs.message == "status page did not answer within 0.05s"

    def test_target(self, check_for, session) -> None:
        assert check_for().target == "127.0.0.1"
        config = StatuspageCheckConfig(
            name="t", kind="statuspage", url="https://www.githubstatus.com"
        ).resolved(Defaults())
        check = StatuspageCheck(config, CheckContext(session=session, clock=SystemClock()))
        assert check.target == "www.githubstatus.com"


# --- Parsers never raise -------------------------------------------------------------------

WANTED = st.sampled_from([(), ("Actions",), ("br0l2tvcx85d", "Pages"), ("Copilot",)]) | st.lists(
    st.text(min_size=1, max_size=6), max_size=2
)


def assert_judged(doc: Any, wanted: Any) -> None:
    summary = parse_summary(doc)
    if isinstance(summary, Observation):
        assert (summary.outcome, summary.failure) == (Outcome.DOWN, FailureKind.SCHEMA)
        return
    assert isinstance(summary, StatusSummary)
    obs = judge_summary(summary, list(wanted))
    assert isinstance(obs, Observation)
    assert obs.message
    if obs.outcome is Outcome.UP:
        assert obs.failure is None
    else:
        assert obs.failure in {FailureKind.SCHEMA, FailureKind.UPSTREAM_DEGRADED}
    if obs.failure is not FailureKind.SCHEMA:
        assert set(obs.details) == {"components", "indicator", "incidents"}


class TestParsersNeverRaise:
    @given(doc=ANY_JSON, wanted=WANTED)
    def test_arbitrary_json(self, doc: Any, wanted: Any) -> None:
        assert_judged(doc, wanted)

    @given(
        components=st.lists(st.dictionaries(st.sampled_from(["id", "name", "status"]), ANY_JSON), max_size=3),
        wanted=WANTED,
    )  # fmt: skip
    def test_arbitrary_components(self, components: list[Any], wanted: Any) -> None:
        doc = {"status": {"indicator": "none"}, "components": components, "incidents": []}
        assert_judged(doc, wanted)

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), wanted=WANTED, calm=st.booleans())
    def test_mutated_fixture(self, data: st.DataObject, wanted: Any, calm: bool) -> None:
        doc = mutate(data, copy.deepcopy(CALM if calm else INCIDENT_DOC))
        assert_judged(doc, wanted)
