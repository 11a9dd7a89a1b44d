"""The typed contracts between stages: the error tree, and what each error means."""

from __future__ import annotations

import inspect

import pytest

import monitor.core.errors as errors
from monitor.cli.client import ApiError
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
from monitor.core.model import FailureKind
from monitor.incidents.postmortem_issue import PostmortemIssueError
from monitor.notifiers.slack_bot import SlackApiError
from monitor.web.errors import INCIDENT_STATUS, status_of


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
