"""`kind: github_actions`: a workflow on GitHub Actions is enabled and its recent runs pass.

Each run makes two conditional GETs through PyGithub's requester, in a worker thread: the
workflow (for its `state`) and its newest runs. `judge()` turns the two documents into an
`Observation`; it is pure, so the rules (superseded cancellations, streaks, failure rate,
staleness) are tested as tables. Checks sharing a token share one rate-limit budget and
stop calling the API together when it runs out.
"""

from __future__ import annotations

import asyncio
import hashlib
import http
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

import requests
from github import Auth, Github
from pydantic import Field, SecretStr, field_validator
from urllib3.util.retry import Retry
from yarl import URL

from monitor.checks.base import Check, CheckContext, LastGood, pick
from monitor.checks.failures import not_json, requests_failure, status_failure
from monitor.checks.http.httpclient import default_user_agent
from monitor.checks.upstream import dig, parse_time, retry_after_s
from monitor.core import jsonbody
from monitor.core.configtypes import CheckConfigBase, PositiveDuration, format_duration
from monitor.core.model import FailureKind, Observation
from monitor.core.retryafter import header
from monitor.metrics.exporter import Metrics

__all__ = [
    "GithubActionsCheck",
    "GithubActionsCheckConfig",
    "Policy",
    "RateBudget",
    "Run",
    "Workflow",
    "budget_for",
    "evaluate",
    "judge",
    "parse_runs",
    "parse_workflow",
    "workflow_problem",
]

GITHUB_API = "https://api.github.com"
API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"

# Conclusions that fail a run. `cancelled` fails too unless a newer run on the same
# branch superseded it (a `concurrency: cancel-in-progress` group does that on every push).
_FAILED = frozenset({"failure", "timed_out", "startup_failure"})
# `skipped` and `neutral` (all jobs skipped by `if:`/path filters, or a neutral check),
# `action_required` (a fork PR awaiting approval) and `stale` say nothing about whether the
# workflow works, so they are ignored: they neither fail nor break a failure streak.
_PASSED = frozenset({"success"})
_DISABLED = {
    "disabled_inactivity": "GitHub turned it off after 60 days without repository activity",
    "disabled_manually": "someone disabled it in the Actions tab or through the API",
    "disabled_fork": "workflows of a fork stay off until enabled in the fork",
}
_SECONDARY_BACKOFF_S = 60.0  # GitHub: without retry-after, wait at least a minute
_MAX_BLOCK = timedelta(hours=2)  # primary limits reset hourly; never trust a wilder header


class GithubActionsCheckConfig(CheckConfigBase):
    """A workflow of a GitHub repository, optionally narrowed to a branch and an event."""

    kind: Literal["github_actions"]
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    workflow: int | str = Field(description="File name (build.yml) or numeric id.")
    branch: str | None = Field(default=None, min_length=1)
    event: str | None = Field(default=None, pattern=r"^[a-z_]+$", description="push, schedule…")
    token: SecretStr | None = Field(default=None, description="e.g. ${GITHUB_TOKEN}; empty: none")
    api_url: str = Field(
        default=GITHUB_API, pattern=r"^https?://\S+$", description="GHE: https://HOST/api/v3"
    )
    max_consecutive_failures: int = Field(default=1, ge=1, le=100)
    max_failure_rate: float | None = Field(
        default=None, ge=0, le=1, description="Down when more of the window failed."
    )
    window: int = Field(default=20, ge=1, le=100, description="Runs the failure rate covers.")
    max_age: PositiveDuration | None = Field(
        default=None, description="Degraded (stale) when the newest run is older."
    )

    @field_validator("workflow")
    @classmethod
    def _workflow_ok(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError(f"workflow id must be positive, got {value}")
        if isinstance(value, str) and (not value.strip() or "/" in value):
            raise ValueError(f"expected a file name such as build.yml or an id, got {value!r}")
        return value


# ---------------------------------------------------------------------------------------
# The pure part: documents in, an Observation out.


@dataclass(frozen=True, slots=True)
class Policy:
    """What `evaluate` asserts, and how results name the workflow."""

    workflow: str
    repo: str = ""
    branch: str | None = None
    event: str | None = None
    max_consecutive_failures: int = 1
    max_failure_rate: float | None = None
    window: int = 20
    max_age: timedelta | None = None

    @classmethod
    def of(cls, config: GithubActionsCheckConfig) -> Policy:
        return cls(
            workflow=str(config.workflow),
            repo=config.repo,
            branch=config.branch,
            event=config.event,
            max_consecutive_failures=config.max_consecutive_failures,
            max_failure_rate=config.max_failure_rate,
            window=config.window,
            max_age=config.max_age,
        )

    @property
    def label(self) -> str:
        """`build.yml on main (push)`: what the runs are runs of."""
        label = self.workflow
        if self.branch is not None:
            label += f" on {self.branch}"
        if self.event is not None:
            label += f" ({self.event})"
        return label


@dataclass(frozen=True, slots=True)
class Workflow:
    state: str
    name: str | None
    html_url: str | None


@dataclass(frozen=True, slots=True)
class Run:
    """The fields of a workflow run the judgement reads."""

    id: int
    number: int | None
    branch: str | None
    sha: str
    event: str | None
    status: str
    conclusion: str | None
    created_at: datetime
    url: str | None

    @property
    def ref(self) -> str:
        return f"#{self.number}" if self.number is not None else f"run {self.id}"


def parse_workflow(doc: Any, policy: Policy) -> Workflow | Observation:
    state = dig(doc, "state", kind=str)
    if state is None:
        return Observation.down(
            FailureKind.SCHEMA, f"GitHub API: workflow {policy.workflow} has no state"
        )
    return Workflow(state, dig(doc, "name", kind=str), dig(doc, "html_url", kind=str))


def workflow_problem(workflow: Workflow, policy: Policy) -> Observation | None:
    """A disabled or deleted workflow starts no runs: that, not "no runs", is the news."""
    where = f"{policy.workflow} in {policy.repo}" if policy.repo else policy.workflow
    details = {"workflow_state": workflow.state, "workflow_url": workflow.html_url}
    why = _DISABLED.get(workflow.state)
    if why is not None:
        return Observation.degraded(
            FailureKind.WORKFLOW_DISABLED,
            f"{where} is disabled ({workflow.state}: {why}); no new runs start until it is "
            "enabled again",
            **details,
        )
    if workflow.state == "deleted":
        return Observation.down(FailureKind.NOT_FOUND, f"{where} was deleted", **details)
    return None


def parse_runs(doc: Any, policy: Policy) -> tuple[list[Run], int | None] | Observation:
    """The runs, newest first, and `total_count`; any unreadable run is a SCHEMA failure."""
    items = dig(doc, "workflow_runs", kind=list)
    if items is None:
        return Observation.down(
            FailureKind.SCHEMA, f"GitHub API: runs of {policy.label}: no workflow_runs array"
        )
    runs = []
    for index, item in enumerate(items):
        run = _parse_run(item)
        if isinstance(run, str):
            return Observation.down(
                FailureKind.SCHEMA,
                f"GitHub API: runs of {policy.label}: workflow_runs[{index}] {run}",
            )
        runs.append(run)
    # The API lists newest first; sorting makes that an invariant, not an assumption.
    runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return runs, dig(doc, "total_count", kind=int)


_RUN_FIELDS = ("id", "status", "head_sha", "created_at")


def _parse_run(item: Any) -> Run | str:
    if not isinstance(item, dict):
        return "is not an object"
    run_id, status = dig(item, "id", kind=int), dig(item, "status", kind=str)
    sha, created_at = dig(item, "head_sha", kind=str), parse_time(item.get("created_at"))
    conclusion = item.get("conclusion")
    if run_id is None or status is None or sha is None or created_at is None:
        missing = [
            k
            for k, v in zip(_RUN_FIELDS, (run_id, status, sha, created_at), strict=True)
            if v is None
        ]
        return f"has no valid {missing[0]}"
    if conclusion is not None and not isinstance(conclusion, str):
        return f"has a conclusion of type {type(conclusion).__name__}"
    return Run(
        id=run_id,
        number=dig(item, "run_number", kind=int),
        branch=dig(item, "head_branch", kind=str),
        sha=sha,
        event=dig(item, "event", kind=str),
        status=status,
        conclusion=conclusion,
        created_at=created_at,
        url=dig(item, "html_url", kind=str),
    )


def judge(workflow_doc: Any, runs_doc: Any, now: datetime, policy: Policy) -> Observation:
    """The whole judgement from the two API documents. Pure; never raises on bad input."""
    workflow = parse_workflow(workflow_doc, policy)
    if isinstance(workflow, Observation):
        return workflow
    problem = workflow_problem(workflow, policy)
    if problem is not None:
        return problem
    parsed = parse_runs(runs_doc, policy)
    if isinstance(parsed, Observation):
        return parsed
    runs, total = parsed
    return evaluate(runs, now, policy, total_count=total)


def evaluate(
    runs: Sequence[Run], now: datetime, policy: Policy, *, total_count: int | None = None
) -> Observation:
    """Judges runs sorted newest first (as `parse_runs` returns them).

    Failure streak first (down), then failure rate (down), then staleness (degraded).
    """
    label = policy.label
    if not runs:
        return _no_runs(policy)
    verdicts = _verdicts(runs)
    streak = next((i for i, (_, failed) in enumerate(verdicts) if not failed), len(verdicts))
    green = next((run for run, failed in verdicts if not failed), None)
    window = verdicts[: policy.window]
    failed_n = sum(failed for _, failed in window)
    subject = verdicts[0][0] if verdicts else runs[0]
    details = {
        "run_url": subject.url,
        "run_number": subject.number,
        "head_sha": subject.sha,
        "conclusion": subject.conclusion,
        "event": subject.event,
        "branch": subject.branch,
        "run_created_at": subject.created_at,
        "last_green_sha": green.sha if green else None,
        "failing_runs": streak,
        "window_runs": len(window),
        "window_failures": failed_n,
    }
    if verdicts and streak >= policy.max_consecutive_failures:
        message = _streak_message(policy, verdicts, streak, green, len(runs), total_count)
        return Observation.down(FailureKind.RUN_FAILED, message, **details)
    rate = policy.max_failure_rate
    if rate is not None and window and failed_n / len(window) > rate:
        message = (
            f"{label}: {failed_n} of {len(window)} recent runs failed "
            f"({failed_n / len(window):.0%}), over max_failure_rate {rate:g}; "
            f"latest {_describe(subject)}"
        )
        return Observation.down(FailureKind.FAILURE_RATE, message, **details)
    newest = runs[0]
    age = now - newest.created_at
    if policy.max_age is not None and age > policy.max_age:
        message = (
            f"{label}: newest run {newest.ref} was created {newest.created_at:%Y-%m-%d %H:%M}Z, "
            f"over max_age {format_duration(policy.max_age)}"
        )
        return Observation.degraded(
            FailureKind.STALE, message, **details, age_s=int(age.total_seconds())
        )
    return Observation.up(_summary(policy, verdicts, streak, newest), **details)


def _verdicts(runs: Sequence[Run]) -> list[tuple[Run, bool]]:
    """The completed runs that count, newest first, each with whether it failed."""
    newer_on: set[str | None] = set()  # branches that have a newer run, of any status
    verdicts = []
    for run in runs:
        superseded = run.branch in newer_on
        newer_on.add(run.branch)
        if run.status != "completed":
            continue
        if run.conclusion in _FAILED or (run.conclusion == "cancelled" and not superseded):
            verdicts.append((run, True))
        elif run.conclusion in _PASSED:
            verdicts.append((run, False))
    return verdicts


def _no_runs(policy: Policy) -> Observation:
    details = {"branch": policy.branch, "event": policy.event, "failing_runs": 0}
    if policy.max_age is not None:
        return Observation.degraded(
            FailureKind.STALE,
            f"{policy.label}: no runs match, expected one within max_age "
            f"{format_duration(policy.max_age)}",
            **details,
        )
    return Observation.up(f"{policy.label}: no runs match, nothing to judge", **details)


def _streak_message(
    policy: Policy,
    verdicts: list[tuple[Run, bool]],
    streak: int,
    green: Run | None,
    fetched: int,
    total_count: int | None,
) -> str:
    latest = verdicts[0][0]
    if streak == 1:
        head = f"{policy.label}: the latest run failed; {_describe(latest)}"
    else:
        # Every run on the page failed and the API has more: the streak may be longer.
        more = streak == len(verdicts) and total_count is not None and total_count > fetched
        head = (
            f"{policy.label}: {'at least ' if more else ''}{streak} failed runs in a row; "
            f"latest {_describe(latest)}"
        )
    if green is not None:
        return f"{head}; last green {green.ref} at {green.sha[:7]}"
    return f"{head}; no green run among the last {len(verdicts)}"


def _summary(policy: Policy, verdicts: list[tuple[Run, bool]], streak: int, newest: Run) -> str:
    if not verdicts:
        return f"{policy.label}: no completed runs yet; newest {newest.ref} {newest.status}"
    latest = verdicts[0][0]
    parts = [f"{policy.label}: latest {latest.ref} {latest.conclusion} at {latest.sha[:7]}"]
    if streak:
        parts.append(
            f"{streak} failed in a row, under max_consecutive_failures "
            f"{policy.max_consecutive_failures}"
        )
    if newest.status != "completed":
        parts.append(f"{newest.ref} {newest.status}")
    return "; ".join(parts)


def _describe(run: Run) -> str:
    text = f"{run.ref} {run.conclusion} at {run.sha[:7]}"
    return f"{text} ({run.url})" if run.url else text


# ---------------------------------------------------------------------------------------
# Rate limits: one budget per API and token, shared by every check that uses it.


class RateBudget:
    """One GitHub rate-limit budget (a token, or anonymous, on one API).

    Checks consult `refusal()` before each request and feed every response to `observe()`.
    Only the event loop touches it (responses are read after the worker thread returns).
    """

    def __init__(self, api_host: str, name: str, metrics: Metrics | None) -> None:
        self.api_host = api_host
        self.name = name  # "anonymous" or a short hash of the token: never the token
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: datetime | None = None
        self.blocked_until: datetime | None = None
        self.blocked_why = ""
        self._strikes = 0  # secondary limits in a row, for the backoff
        self._metrics = metrics  # the gauge's series appears with the first known value

    @property
    def reserve(self) -> int:
        """Requests left for everyone else using the token (CI, people, other tools)."""
        return max(5, math.ceil(0.02 * self.limit)) if self.limit else 5

    def refusal(self, now: datetime) -> Observation | None:
        """Why no request may be made now, or None."""
        until = self.blocked_until
        if until is None or now >= until:
            return None
        wait = until - now
        # The message stays the same run after run (the timeline adds a line only when it
        # changes); the countdown is a detail.
        return Observation.down(
            FailureKind.RATE_LIMITED,
            f"{self.blocked_why}; not calling the GitHub API until {until:%Y-%m-%d %H:%M:%S}Z",
            retry_after_s=wait.total_seconds(),
            retry_in=format_duration(timedelta(seconds=math.ceil(wait.total_seconds()))),
            rate_limit_reset=until,
            budget=self.name,
        )

    def observe(
        self, status: int, headers: Mapping[str, str], body: str, now: datetime
    ) -> Observation | None:
        """Takes the budget from a response; a rate-limit refusal comes back as a value."""
        self.limit = _int_header(headers, "x-ratelimit-limit") or self.limit
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset = _int_header(headers, "x-ratelimit-reset")
        if reset is not None:
            self.reset_at = datetime.fromtimestamp(min(max(reset, 0), 2**33), UTC)
        if remaining is not None:
            self.remaining = remaining
            if self._metrics is not None:
                gauge = self._metrics.ratelimit_remaining
                gauge.labels(api=self.api_host, budget=self.name).set(remaining)
        got = f"{status} {_phrase(status)}".strip()
        if status in (403, 429) and remaining == 0:
            why = f"GitHub API rate limit exhausted ({got}, 0 of {self.limit or '?'} left)"
            self._block(self._until_reset(now), why)
        elif status == 429 or (status == 403 and _secondary(headers, body)):
            self._strikes += 1
            wait = retry_after_s(headers, now)
            if wait is None:  # back off harder each time GitHub says so without a number
                wait = min(_SECONDARY_BACKOFF_S * 2 ** (self._strikes - 1), 900.0)
            self._block(now + timedelta(seconds=wait), f"GitHub API secondary rate limit ({got})")
        else:
            if 200 <= status < 400:
                self._strikes = 0
            if remaining is not None and remaining < self.reserve:
                self._block(
                    self._until_reset(now),
                    f"GitHub API rate limit nearly used up ({remaining} of "
                    f"{self.limit or '?'} left, reserve {self.reserve})",
                )
            return None  # this response is still good to use
        return self.refusal(now)

    def _until_reset(self, now: datetime) -> datetime:
        reset = self.reset_at
        if reset is None or reset <= now:
            return now + timedelta(seconds=_SECONDARY_BACKOFF_S)
        return min(reset, now + _MAX_BLOCK)

    def _block(self, until: datetime, why: str) -> None:
        if self.blocked_until is None or until > self.blocked_until:
            self.blocked_until = until
        self.blocked_why = why


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(float(header(headers, name) or ""))
    except (ValueError, OverflowError):
        return None


def _secondary(headers: Mapping[str, str], body: str) -> bool:
    """A 403 is a rate limit when it says so; otherwise it is about permissions."""
    message = dig(_loads(body), "message", kind=str) or ""
    return retry_after_s(headers) is not None or "rate limit" in message.lower()


def _loads(text: str) -> Any:
    try:
        return jsonbody.loads(text)
    except ValueError:
        return None


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def budget_for(ctx: CheckContext, api_url: str, token: str) -> RateBudget:
    """The budget shared by every check on this API with this token."""
    name = hashlib.sha256(token.encode()).hexdigest()[:12] if token else "anonymous"
    key = f"github_actions:budget:{api_url}:{name}"
    budget = ctx.shared.get(key)
    if not isinstance(budget, RateBudget):
        budget = ctx.shared[key] = RateBudget(URL(api_url).host or api_url, name, ctx.metrics)
    return budget


# ---------------------------------------------------------------------------------------
# The check: PyGithub's requester in a worker thread, one small call at a time.


class _Busy(Exception):
    """A request from a run that timed out still holds the client."""


@dataclass(frozen=True, slots=True)
class _Reply:
    doc: Any


class GithubActionsCheck(Check[GithubActionsCheckConfig]):
    """Loads the workflow and its newest runs once per run, with ETags, and judges them."""

    Config = GithubActionsCheckConfig
    upstream_label = "GitHub API"
    unavailable_is_blindness = True  # the API is the monitor's window on the workflows

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        values = pick(details, "branch", "run_url")
        if isinstance(details.get("head_sha"), str):
            values["sha"] = details["head_sha"]
        return values

    @classmethod
    def advice(cls, good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
        """The last green commit and a compare link to the failing one."""
        # The newest green run the API reports beats the memory: it may be newer than what
        # the monitor saw pass (a run that went green and red between two probes).
        sha = failing.get("last_green_sha")
        if not isinstance(sha, str) and good is not None:
            sha = good.values.get("sha")
        if not isinstance(sha, str) or not sha:
            return None
        bad = failing.get("head_sha")
        branch = failing.get("branch") or (good.values.get("branch") if good else None)
        on = f" on {branch}" if branch else ""
        block: dict[str, Any] = (
            {**good.to_json()} if good is not None else {"at": None, "values": {"sha": sha}}
        )
        block["values"] = {**block["values"], "sha": sha}
        block["command"] = None
        repo_url = _repo_url(failing.get("run_url"))
        url = (
            f"{repo_url}/compare/{sha}...{bad}"
            if repo_url and isinstance(bad, str) and bad and bad != sha
            else None
        )
        block["url"] = url
        text = f"last green commit{on}: {sha[:12]}"
        if isinstance(bad, str) and bad and bad != sha:
            text += f"; failing at {bad[:12]}"
            text += f"; changes since: {url}" if url else ""
        block["text"] = text
        return block

    def __init__(self, config: GithubActionsCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        api_url = config.api_url.rstrip("/")
        token = config.token.get_secret_value() if config.token is not None else ""
        self._token = token
        self._host = URL(api_url).host or api_url
        self._policy = Policy.of(config)
        self._budget = budget_for(ctx, api_url, token)
        # PyGithub sleeps by default: on rate limits until the reset (uncapped), between
        # requests (0.25s) and on 5xx (10 tries). A check must answer within its timeout,
        # so: a per-request timeout well inside the check's, a couple of quick retries on
        # connection errors and 502/503/504 only, and never a wait on a rate limit (the
        # shared budget handles those). Each check has its own client, so no throttle.
        self._github = Github(
            base_url=api_url,
            auth=Auth.Token(token) if token else None,
            timeout=max(1, int(config.timeout_s / 3)),
            user_agent=default_user_agent(),
            retry=Retry(
                total=2, connect=2, read=0, status=2, other=0, redirect=0,
                allowed_methods=frozenset({"GET"}), status_forcelist=(502, 503, 504),
                backoff_factor=0.1, backoff_max=0.5, raise_on_status=False,
                respect_retry_after_header=False,
            ),
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
            api_version=API_VERSION,
        )  # fmt: skip
        self._requester = self._github.requester
        # PyGithub keeps one connection object per client and is not safe for two
        # requests at once; a thread left over from a timed-out run may still be in one.
        self._lock = threading.Lock()
        repo, workflow = config.repo, quote(str(config.workflow), safe="")
        self._workflow_path = f"/repos/{repo}/actions/workflows/{workflow}"
        # Room beyond the window for runs that do not count (in progress, skipped, superseded).
        per_page = min(100, max(config.window, config.max_consecutive_failures) + 10)
        params: dict[str, Any] = {"per_page": per_page}
        if config.branch is not None:
            params["branch"] = config.branch
        if config.event is not None:
            params["event"] = config.event
        self._runs_params = params
        # url → (ETag, parsed body) of the last 200, for conditional requests.
        self._cache: dict[str, tuple[str, Any]] = {}

    @property
    def target(self) -> str:
        return self._host

    def close(self) -> None:
        """Closes the client's connections (they are also closed when it is collected)."""
        self._github.close()

    async def run(self) -> Observation:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                obs = await self._probe()
        except TimeoutError:
            obs = Observation.down(
                FailureKind.UNAVAILABLE,
                f"GitHub API did not answer within {self.config.timeout_s:g}s",
            )
        return self._redacted(obs)

    async def _probe(self) -> Observation:
        policy = self._policy
        reply = await self._get(self._workflow_path, {}, f"workflow {policy.workflow}")
        if isinstance(reply, Observation):
            return reply
        workflow = parse_workflow(reply.doc, policy)
        if isinstance(workflow, Observation):
            return workflow
        problem = workflow_problem(workflow, policy)
        if problem is not None:
            return problem
        reply = await self._get(f"{self._workflow_path}/runs", self._runs_params, "runs")
        if isinstance(reply, Observation):
            return reply
        parsed = parse_runs(reply.doc, policy)
        if isinstance(parsed, Observation):
            return parsed
        runs, total = parsed
        return evaluate(runs, self.ctx.clock.now(), policy, total_count=total)

    async def _get(self, path: str, params: dict[str, Any], what: str) -> _Reply | Observation:
        """One conditional GET, every failure a value.

        `PaginatedList` (what `Workflow.get_runs()` returns) never sends If-None-Match, so
        each poll would cost a full request against the hourly limit. `requestJson` takes
        our headers and hands back status, headers and body text: with the ETag of the
        last 200 a 304 answers unchanged data, and an authenticated 304 is free.
        """
        clock = self.ctx.clock
        refusal = self._budget.refusal(clock.now())
        if refusal is not None:
            return refusal
        key = f"{path}?{urlencode(sorted(params.items()))}"
        cached = self._cache.get(key)
        # A fresh dict each time: PyGithub writes the Authorization header into it.
        headers = {"Accept": ACCEPT}
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        try:
            status, raw_headers, body = await asyncio.to_thread(self._call, path, params, headers)
        except _Busy:
            return Observation.down(
                FailureKind.UNAVAILABLE,
                "GitHub API: a request from an earlier run that timed out is still waiting",
            )
        except requests.RequestException as exc:
            kind, reason = requests_failure(exc)
            return Observation.down(kind, f"GitHub API unavailable: {reason}")
        except RuntimeError as exc:  # PyGithub refuses redirects to another host or scheme
            return Observation.down(FailureKind.PROTOCOL, f"GitHub API: {exc}")
        resp_headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        limited = self._budget.observe(status, resp_headers, body, clock.now())
        if limited is not None:
            return limited
        if status == 304:
            if cached is None:
                return Observation.down(
                    FailureKind.SCHEMA, f"GitHub API answered 304 for {what} without a cached copy"
                )
            return _Reply(cached[1])
        if status != 200:
            return self._bad_status(status, body, what)
        doc = _json_body(body, resp_headers, what)
        if isinstance(doc, Observation):
            return doc
        etag = resp_headers.get("etag")
        if etag:
            self._cache[key] = (etag, doc)
        else:
            self._cache.pop(key, None)
        return _Reply(doc)

    def _call(
        self, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], str]:
        """Runs in a worker thread."""
        if not self._lock.acquire(blocking=False):
            raise _Busy
        try:
            return self._requester.requestJson("GET", path, parameters=params, headers=headers)
        finally:
            self._lock.release()

    def _bad_status(self, status: int, body: str, what: str) -> Observation:
        got = f"{status} {_phrase(status)}".strip()
        if status == 404:
            hint = "" if self._token else "; a private repository needs a token"
            return Observation.down(
                FailureKind.NOT_FOUND,
                f"GitHub API: {what} not found in {self.config.repo} ({got}){hint}",
                status=status,
            )
        said = dig(_loads(body), "message", kind=str)
        if said:
            got += f": {said[:200]}"
        # Rate limits never get here: the budget answered them first.
        kind = status_failure(status)
        if kind is FailureKind.AUTH:
            refused = "the token" if status == 401 else f"access to {what}"
            message = f"GitHub API refused {refused} ({got})"
        elif kind is FailureKind.UNAVAILABLE:
            message = f"GitHub API unavailable: {got}"
        else:
            message = f"GitHub API answered {got} for {what}"
        return Observation.down(kind, message, status=status)

    def _redacted(self, obs: Observation) -> Observation:
        """Last line of defence: whatever a server or library echoed, the token is cut out."""
        token = self._token
        if not token or (
            token not in obs.message
            and not any(isinstance(v, str) and token in v for v in obs.details.values())
        ):
            return obs
        details = {
            k: v.replace(token, "***") if isinstance(v, str) else v for k, v in obs.details.items()
        }
        return Observation(
            obs.outcome, obs.failure, obs.message.replace(token, "***"), details, obs.phases
        )


def _json_body(body: str, headers: Mapping[str, str], what: str) -> Any:
    try:
        return jsonbody.loads(body)
    except ValueError as exc:
        ctype = headers.get("content-type", "").split(";")[0].strip() or "no content type"
        kind, hint = not_json(ctype, exc)
        return Observation.down(kind, f"GitHub API answered {what} with {hint}")


def _repo_url(run_url: object) -> str | None:
    """`https://github.com/o/r/actions/runs/1` → `https://github.com/o/r` (GHE alike)."""
    if not isinstance(run_url, str) or "/actions/runs/" not in run_url:
        return None
    return run_url.split("/actions/runs/", 1)[0]
