"""The typed contracts between stages: the error tree, and what each error means."""

from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import monitor.core.errors as errors
from monitor.cli.client import ApiError
from monitor.core.alertstate import AlertState
from monitor.core.errors import (
    ConfigError,
    IncidentConflict,
    IncidentError,
    IncidentInvalid,
    IncidentNotFound,
    MonitorError,
    NotifierError,
    ProbeError,
    StoreError,
)
from monitor.core.model import (
    CheckResult,
    EscalationMode,
    EscalationState,
    FailureKind,
    Incident,
    IncidentEvent,
    IncidentSource,
    IncidentStatus,
    OutboxItem,
    OutboxStatus,
    Outcome,
    Severity,
    Suppression,
    SuppressionKind,
)
from monitor.incidents.manager import CheckEvent, IncidentManager
from monitor.incidents.postmortem_issue import PostmortemIssueError
from monitor.metrics.exporter import Metrics
from monitor.notifiers.slack_bot import SlackApiError
from monitor.paging.escalation import Policy, freeze, thaw
from monitor.store import sqlite as sqlite_store
from monitor.store.sqlite import MIGRATIONS, SqliteStore
from monitor.web.errors import INCIDENT_STATUS, status_of
from tests.fakes import FakeClock, MemoryStore

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_every_deliberate_error_is_a_monitor_error() -> None:
    declared = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert len(declared) >= 11
    for cls in declared:
        assert issubclass(cls, MonitorError), cls
    for cls in (ApiError, PostmortemIssueError, SlackApiError, StoreError, ProbeError):
        assert issubclass(cls, MonitorError), cls


def test_retryability_is_a_property_of_the_type() -> None:
    assert StoreError("disk full").retryable
    assert ProbeError(FailureKind.DNS, "no such host").retryable
    assert not ConfigError([]).retryable
    for cls in (IncidentError, IncidentNotFound, IncidentConflict, IncidentInvalid):
        assert not cls("no").retryable
    # A delivery failure states it per answer: a 5xx may pass, a 4xx will not.
    assert NotifierError("502", retryable=True).retryable
    assert not NotifierError("404", retryable=False).retryable
    assert not SlackApiError("x: channel_not_found", error="channel_not_found").retryable
    assert SlackApiError("x: ratelimited", error="ratelimited").retryable


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (IncidentNotFound("no incident 9"), 404),
        (IncidentConflict("incident 9 is already resolved"), 409),
        (IncidentInvalid("bad"), 422),
        (IncidentError("unspecified"), 409),
    ],
)
def test_web_layer_maps_each_incident_error_to_its_status(
    error: IncidentError, status: int
) -> None:
    assert status_of(error) == status


def test_every_incident_error_subclass_has_a_status() -> None:
    assert set(IncidentError.__subclasses__()) == set(INCIDENT_STATUS) - {IncidentError}
    assert not hasattr(IncidentError("x"), "status")  # statuses live in the web layer


# --- closed enums, followed to the store ---------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "monitor.sqlite3")
    await s.open()
    return s


async def _incident(store: SqliteStore, source: IncidentSource = IncidentSource.CHECK) -> int:
    made = await store.create_incident(
        Incident(0, f"k-{source}", "t", IncidentStatus.TRIGGERED, Severity.P1, T0, T0,
                 source=source),
        [],
    )  # fmt: skip
    return made.id


@pytest.mark.parametrize("status", list(OutboxStatus))
async def test_every_outbox_status_round_trips(store: SqliteStore, status: OutboxStatus) -> None:
    await store.enqueue([OutboxItem(0, "k", "slack", "{}", T0, T0)])
    (item,) = await store.pending_notifications("slack")
    assert item.status is OutboxStatus.PENDING
    if status is OutboxStatus.SUPERSEDED:
        await store.settle_notifications([item.id], status, [])
    elif status is not OutboxStatus.PENDING:
        await store.update_notification(replace(item, status=status))
    with closing(sqlite3.connect(store.path)) as db:
        (written,) = db.execute("SELECT status FROM outbox").fetchone()
    assert written == status.value
    pending = await store.pending_notifications("slack")
    assert [i.status for i in pending] == ([status] if status is OutboxStatus.PENDING else [])
    await store.close()


async def test_settling_refuses_a_status_outside_the_enum(store: SqliteStore) -> None:
    await store.enqueue([OutboxItem(0, "k", "slack", "{}", T0, T0)])
    with pytest.raises(ValueError, match="bogus"):
        await store.settle_notifications([1], "bogus", [])  # type: ignore[arg-type]
    await store.close()


@pytest.mark.parametrize("source", list(IncidentSource))
async def test_every_incident_source_round_trips(
    store: SqliteStore, source: IncidentSource
) -> None:
    incident_id = await _incident(store, source)
    (loaded,) = await store.list_incidents()
    assert (loaded.id, loaded.source) == (incident_id, source)
    assert isinstance(loaded.source, IncidentSource)
    await store.close()


@pytest.mark.parametrize("mode", list(EscalationMode))
async def test_escalation_mode_and_epoch_round_trip(
    store: SqliteStore, mode: EscalationMode
) -> None:
    incident_id = await _incident(store)
    frozen = freeze("wing", Policy.model_validate({"steps": [{"page": "primary"}]}))
    state = EscalationState(incident_id, frozen, 1, 0, T0, mode=mode, epoch=1_790_000_000)
    await store.commit_escalation(incident_id, state, [])
    assert await store.load_escalations() == [state]
    assert (await store.load_escalations())[0].mode is mode
    await store.close()


async def test_an_old_escalation_keeps_its_epoch_from_the_policy_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database written before the epoch was a column: the running escalation loads with
    the epoch that was hidden in its policy, so its pages keep their idempotency keys."""
    path = tmp_path / "monitor.sqlite3"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:5])
    old = SqliteStore(path)
    await old.open()
    await old.close()
    frozen = freeze("wing", Policy.model_validate({"steps": [{"page": "primary"}]}))
    legacy = json.dumps({"epoch": 1_790_000_123, **json.loads(frozen)})
    with closing(sqlite3.connect(path)) as db, db:
        # The row as that schema has it (the store of today writes columns added since).
        incident_id = db.execute(
            "INSERT INTO incidents (key, title, status, severity, opened_at, updated_at, source,"
            " message, auto_resolve, reopened) VALUES ('k', 't', 'triggered', 'P1', ?, ?,"
            " 'check', '', 1, 0)",
            (T0.isoformat(), T0.isoformat()),
        ).lastrowid
        db.execute(
            "INSERT INTO escalations (incident_id, policy, step, pass_no, next_at, mode)"
            " VALUES (?, ?, 2, 1, ?, 'acknowledged')",
            (incident_id, legacy, T0.isoformat()),
        )
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    new = SqliteStore(path)
    await new.open()
    (state,) = await new.load_escalations()
    assert (state.epoch, state.mode, state.step, state.pass_no) == (
        1_790_000_123,
        EscalationMode.ACKNOWLEDGED,
        2,
        1,
    )
    assert thaw(state.policy)[0] == "wing"  # the old policy text still thaws
    await new.close()


async def test_a_suppression_reaches_the_metric_by_its_kind_not_its_words(
    clock: FakeClock,
) -> None:
    """The pipeline hands the manager a typed suppression: the metric's label is its kind,
    never parsed back from the words people read."""
    registry = CollectorRegistry()
    manager = IncidentManager(
        MemoryStore(), clock, Metrics(registry), cooldown=timedelta(minutes=30)
    )
    result = CheckResult("docs", "http", Outcome.DOWN, FailureKind.HTTP_STATUS, "503",
                         clock.now(), 0.1)  # fmt: skip
    held = Suppression(SuppressionKind.MAINTENANCE, "silence the pager: release until 10:00")
    opened = await manager.on_check(CheckEvent(
        check="docs", key="docs", title="docs is down", result=result, state=AlertState.DOWN,
        previous=AlertState.UP, severity=Severity.P1, rule="r", suppressed=held,
    ))  # fmt: skip
    assert opened is not None
    assert opened.suppressed == held.text  # people read the text
    sample = "monitor_pages_suppressed_total"
    assert registry.get_sample_value(sample, {"reason": "maintenance"}) == 1
    assert registry.get_sample_value(sample, {"reason": "silence"}) is None


async def test_listeners_hear_incident_events_as_enum_members(
    clock: FakeClock, metrics: Metrics
) -> None:
    manager = IncidentManager(MemoryStore(), clock, metrics, cooldown=timedelta(minutes=30))
    await manager.load()
    heard: list[tuple[object, str]] = []

    async def listener(incident: Incident, event: IncidentEvent, actor: str) -> None:
        heard.append((event, actor))

    listen: Callable[[Incident, IncidentEvent, str], Awaitable[None]] = listener
    manager.listeners.append(listen)
    report = await manager.report("install fails", "ana")
    await manager.set_severity(report.id, Severity.P2, "ana")
    await manager.acknowledge(report.id, "bob")
    await manager.resolve(report.id, "bob")
    drill = await manager.drill(Severity.P2, "ana")
    assert report.source is IncidentSource.MANUAL
    assert drill.source is IncidentSource.DRILL
    assert [e for e, _ in heard] == [
        IncidentEvent.TRIAGED,
        IncidentEvent.ACKNOWLEDGED,
        IncidentEvent.RESOLVED,
        IncidentEvent.OPENED,
    ]
    assert all(type(e) is IncidentEvent for e, _ in heard)


# --- one clock -------------------------------------------------------------------------


async def test_http_latency_is_measured_on_the_injected_clock(clock: FakeClock) -> None:
    import aiohttp

    """`max_latency` judges clock time: a fake clock that moves 2 s during the request
    makes it slow, whatever the real time taken."""
    from monitor.checks import CheckContext
    from monitor.checks.http.check import HttpCheck, HttpCheckConfig
    from monitor.checks.http.httpclient import PhaseTimer
    from monitor.checks.http.probe import ProbeResponse
    from monitor.core.configtypes import Defaults

    class Slow(HttpCheck):
        async def _request(self, timer: PhaseTimer) -> ProbeResponse:
            await clock.advance(2)
            return ProbeResponse(200, "OK", "http://x.test/", None, [], b"ok", False, None)

    config = HttpCheckConfig(
        name="t", kind="http", url="http://x.test/", max_latency="1s"
    ).resolved(Defaults())
    async with aiohttp.ClientSession() as session:
        obs = await Slow(config, CheckContext(session=session, clock=clock)).run()
    assert obs.outcome.value == "degraded"
    assert obs.message == "slower than max_latency 1s"
    assert obs.details["elapsed_s"] == 2.0


def test_a_notifier_reads_a_dateless_retry_after_against_its_clock(clock: FakeClock) -> None:
    from monitor.notifiers.base import http_error

    at = clock.now() + timedelta(seconds=90)
    headers = {"Retry-After": at.strftime("%a, %d %b %Y %H:%M:%S GMT")}  # and no Date
    error = http_error("slack", 429, headers, "", clock=clock)
    assert error is not None
    assert error.retry_after_s == 90.0


# --- the upstream error map ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rate_limited", "kind"),
    [
        (429, False, FailureKind.RATE_LIMITED),
        (403, True, FailureKind.RATE_LIMITED),
        (403, False, FailureKind.AUTH),
        (401, False, FailureKind.AUTH),
        (500, False, FailureKind.UNAVAILABLE),
        (503, False, FailureKind.UNAVAILABLE),
        (404, False, FailureKind.PROTOCOL),  # what a 404 means is the caller's to say
        (400, False, FailureKind.PROTOCOL),
        (302, False, FailureKind.PROTOCOL),
    ],
)
def test_status_failure(status: int, rate_limited: bool, kind: FailureKind) -> None:
    from monitor.checks.failures import status_failure

    assert status_failure(status, rate_limited=rate_limited) is kind


def _exceptions() -> list[tuple[BaseException, FailureKind]]:
    import errno
    import ssl

    import requests

    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    return [
        (OSError(errno.EMFILE, "Too many open files"), FailureKind.MONITOR_RESOURCES),
        (refused, FailureKind.DISCONNECTED),  # a ConnectionError once connected (aiohttp)
        (OSError(errno.EHOSTUNREACH, "No route to host"), FailureKind.CONNECT),
        (TimeoutError(), FailureKind.TIMEOUT),
        (ssl.SSLError(1, "bad record"), FailureKind.TLS),
        (ValueError("bad URL"), FailureKind.PROTOCOL),
        (requests.ConnectionError(refused), FailureKind.UNAVAILABLE),
        (requests.Timeout(), FailureKind.UNAVAILABLE),
        (RuntimeError("boom"), FailureKind.UNEXPECTED),
    ]


@pytest.mark.parametrize(("exc", "kind"), _exceptions())
def test_exception_failure(exc: BaseException, kind: FailureKind) -> None:
    import requests

    from monitor.checks.failures import classify_exception, requests_failure

    if isinstance(exc, requests.RequestException):
        assert requests_failure(exc)[0] is kind
    else:
        assert classify_exception(exc)[0] is kind


def test_the_three_stacks_share_the_map() -> None:
    """The probe, the aiohttp checks and the GitHub check name the same socket failure
    the same way: one kind, one wording of the reason."""
    import errno

    import requests

    from monitor.checks.failures import innermost_reason, os_failure, os_reason

    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert os_failure(refused) is FailureKind.CONNECT
    assert os_failure(OSError(errno.EMFILE, "Too many open files")) is (
        FailureKind.MONITOR_RESOURCES
    )
    assert os_reason(refused) == "Connection refused"
    wrapped = requests.ConnectionError(requests.ConnectionError(refused))
    assert innermost_reason(wrapped) == os_reason(refused)
    assert innermost_reason(requests.Timeout()) == "timed out"


# --- the web layer: one module per resource --------------------------------------------


def test_every_route_has_one_handler_in_one_resource_module() -> None:
    from monitor.web import badges, drills, history, incidents, silences
    from monitor.web.apischema import ROUTES
    from monitor.web.common import IncidentApi

    api = IncidentApi(manager=None, silences=None, clock=None, token=None)  # type: ignore[arg-type]
    by_module = [set(m.handlers(api)) for m in (incidents, drills, silences)]
    by_module.append(set(history.handlers(history.HistoryApi(None, bool))))  # type: ignore[arg-type]
    by_module.append(set(badges.handlers(badges.BadgeApi(list, None, None, None))))  # type: ignore[arg-type]
    everything = set().union(*by_module)
    assert sum(len(names) for names in by_module) == len(everything)  # no name twice
    served_elsewhere = {"metrics", "healthz", "readyz", "openapi", "status", "page", "asset_page"}
    assert {r.operation for r in ROUTES} == everything | served_elsewhere


def test_resource_handlers_call_the_manager_not_the_store() -> None:
    import monitor.web.drills
    import monitor.web.incidents
    import monitor.web.silences

    for module in (monitor.web.incidents, monitor.web.drills, monitor.web.silences):
        assert ".store" not in inspect.getsource(module), module.__name__


# --- the CLI: handlers by set_defaults, local apart from remote ------------------------


def test_every_command_dispatches_through_its_handler() -> None:
    import argparse

    from monitor.cli import local, remote
    from monitor.cli.main import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    local_names = {"run", "check", "validate", "schema", "explain", "runbook", "oncall", "backup"}
    for name, command in sub.choices.items():
        defaults = command._defaults
        assert callable(defaults.get("handler")), name
        module = remote if name not in local_names else local
        assert defaults["handler"].__module__ == module.__name__, name
        if module is remote:
            assert defaults["remote"] is True
            assert callable(defaults["call"]), name
    assert local_names < set(sub.choices)
