"""Client errors on the session the registry, marketplace and status-page checks share,
that a real server cannot provoke on demand: a payload cut by the peer, a disconnect, a
TLS failure. aioresponses raises them from the session itself; every other behaviour of
these checks is tested against local servers that speak the real wire format."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses

from monitor.checks import CHECKS, CheckContext
from monitor.core.configtypes import Defaults
from monitor.core.model import FailureKind, Outcome
from monitor.engine.state import blindness
from tests.fakes import FakeClock

_KEY = ConnectionKey("registry.npmjs.org", 443, True, True, None, None, None, None)

ERRORS: dict[str, tuple[Callable[[], Exception], FailureKind]] = {
    "payload": (
        lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
        FailureKind.DISCONNECTED,
    ),
    "disconnected": (
        lambda: aiohttp.ServerDisconnectedError("Server disconnected"),
        FailureKind.DISCONNECTED,
    ),
    "tls": (
        lambda: aiohttp.ClientSSLError(_KEY, OSError(1, "wrong version number")),
        FailureKind.TLS,
    ),
    "certificate": (
        lambda: aiohttp.ClientConnectorCertificateError(_KEY, Exception("certificate has expired")),
        FailureKind.TLS,
    ),
}

CONFIGS: dict[str, dict[str, Any]] = {
    "npm": {"package": "winglang"},
    "vscode_marketplace": {"extension": "Monada.vscode-wing"},
    "openvsx": {"extension": "Monada.vscode-wing"},
    "statuspage": {"url": "https://www.githubstatus.com", "components": ["Actions"]},
}


@pytest.fixture
def broken() -> Iterator[Callable[[Exception], None]]:
    with aioresponses() as m:

        def fail_with(exc: Exception) -> None:
            for method in ("GET", "POST", "HEAD"):
                m.add(re.compile(r".*"), method=method, exception=exc, repeat=True)

        yield fail_with


@pytest.mark.parametrize("error", sorted(ERRORS))
@pytest.mark.parametrize("kind", sorted(CONFIGS))
async def test_a_client_error_is_the_upstream_unavailable_with_its_cause(
    kind: str, error: str, broken: Callable[[Exception], None], session: aiohttp.ClientSession
) -> None:
    make, cause = ERRORS[error]
    broken(make())
    cls = CHECKS[kind]
    config = cls.Config.model_validate(
        {"name": "t", "kind": kind, "timeout": "5s", **CONFIGS[kind]}
    ).resolved(Defaults())
    obs = await cls(config, CheckContext(session=session, clock=FakeClock())).run()
    assert (obs.outcome, obs.failure) == (Outcome.DOWN, FailureKind.UNAVAILABLE)
    assert obs.details["cause"] == cause.value
    assert "unavailable" in obs.message
    # Whose problem it is stays the kind's call: the status page is the monitor's window,
    # a registry or a gallery the users' own path.
    assert blindness(kind, obs.failure) is (kind == "statuspage")
