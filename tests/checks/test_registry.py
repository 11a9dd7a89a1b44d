"""The check-kind registry, and the seam a kind plugs into: a new kind is one module and
one registry line, and everything kind-specific (last good, asset facts, blindness, the
upstream's name) comes from its class."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

import monitor.checks
from monitor.checks import CHECKS, Check, CheckContext
from monitor.config import loader
from monitor.config.loader import config_json_schema, parse_config
from monitor.core.alertstate import AlertState
from monitor.core.model import FailureKind, Outcome, Severity
from monitor.engine.lastgood import advice, capture
from monitor.engine.limits import Limiter
from monitor.engine.pipeline import ResultHandler
from monitor.engine.scheduler import CheckRunner
from monitor.engine.state import blindness
from monitor.incidents.manager import IncidentManager
from monitor.incidents.rules import SeverityRule
from tests.checks.dnskind import DnsCheck
from tests.fakes import FakeClock, MemoryStore

_HELPERS = {"base", "upstream"}  # modules under checks/ that are no kind


def _kind_modules() -> Iterator[str]:
    for m in pkgutil.walk_packages(monitor.checks.__path__, "monitor.checks."):
        if not m.ispkg and m.name.rsplit(".", 1)[1] not in _HELPERS:
            yield m.name


def test_every_check_class_is_registered_under_its_kind() -> None:
    found: dict[str, type[Check[Any]]] = {}
    for name in _kind_modules():
        module = importlib.import_module(name)
        for c in vars(module).values():
            if (
                isinstance(c, type) and issubclass(c, Check) and c is not Check
                and c.__module__ == module.__name__
            ):  # fmt: skip
                [kind] = typing.get_args(c.Config.model_fields["kind"].annotation)
                assert kind not in found, f"{kind!r} is implemented twice"
                found[kind] = c
                assert c.__name__ in module.__all__
                assert c.Config.__name__ in module.__all__
    assert found == CHECKS


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_each_kind_declares_its_knowledge_with_the_right_types(kind: str) -> None:
    cls = CHECKS[kind]
    assert isinstance(cls.unavailable_is_blindness, bool)
    assert cls.upstream_label is None or isinstance(cls.upstream_label, str)
    assert isinstance(cls.capture({}), dict)
    assert cls.advice(None, {}) is None  # nothing known, nothing to say
    facts = cls.asset_facts({})
    assert facts is None or facts.version is None


def test_only_window_kinds_are_blind_when_their_api_is_unavailable() -> None:
    window = {k for k in CHECKS if blindness(k, FailureKind.UNAVAILABLE)}
    assert window == {"github_actions", "statuspage"}
    assert not blindness("no-such-kind", FailureKind.UNAVAILABLE)


@pytest.fixture
def dns_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one registry line, at test time (the loader's model is rebuilt around it)."""
    monkeypatch.setitem(CHECKS, "dns", DnsCheck)
    loader._file_model.cache_clear()
    yield
    loader._file_model.cache_clear()


YAML = """
checks:
  - name: resolver
    kind: dns
    host: localhost
    expect: {expect}
    interval: 30s
    failure_threshold: 1
"""


def test_a_new_kind_validates_and_is_in_the_schema(dns_kind: None) -> None:
    config = parse_config(YAML.format(expect="127.0.0.1"), "monitors.yaml", {})
    [check] = config.checks
    assert isinstance(check, DnsCheck.Config)
    assert check.host == "localhost"
    assert "dns" in str(config_json_schema())
    with pytest.raises(Exception, match="host"):
        parse_config("checks:\n  - {name: r, kind: dns}\n", "monitors.yaml", {})


def test_without_its_registry_line_the_kind_is_unknown() -> None:
    with pytest.raises(Exception, match="dns"):
        parse_config(YAML.format(expect="127.0.0.1"), "monitors.yaml", {})


async def test_a_new_kind_runs_through_the_pipeline_with_its_own_hooks(
    dns_kind: None, clock: FakeClock, metrics, session
) -> None:
    store = MemoryStore()
    manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
    handler = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
    handler.configure([SeverityRule.model_validate({"name": "dns", "severity": "P1"})], [])
    ctx = CheckContext(session, clock, metrics)

    async def run(expect: str) -> None:
        parsed = parse_config(YAML.format(expect=expect), "monitors.yaml", {})
        [config] = parsed.checks
        limiter = Limiter(parsed.limits)
        runner = CheckRunner(CHECKS[config.kind](config, ctx), clock, limiter, metrics, handler)
        await handler(config, await runner.run_once())
        await clock.advance(30)

    await run("127.0.0.1")
    assert handler.states["resolver"].state is AlertState.UP
    assert handler.last_good["resolver"].values == {
        "host": "localhost", "addresses": capture("dns", handler.last["resolver"].details)[
            "addresses"
        ],
    }  # fmt: skip
    assert "127.0.0.1" in handler.last_good["resolver"].values["addresses"]
    assert "lastgood:resolver" in store.kv
    exposition = generate_latest(metrics.registry).decode()
    assert 'monitor_asset_version_info{check="resolver",version="127.0.0.1"} 1.0' in exposition

    await run("192.0.2.1")  # the name moved away from what it must resolve to
    last = handler.last["resolver"]
    assert (last.outcome, last.failure) == (Outcome.DOWN, FailureKind.CONTENT)
    incident = manager.open_for("resolver")
    assert incident is not None
    assert incident.severity is Severity.P1
    assert incident.last_good is not None
    assert incident.last_good["text"].startswith("localhost resolved to ")
    assert "127.0.0.1" in incident.last_good["text"]
    assert incident.last_good == advice("dns", handler.last_good["resolver"], last.details)
    assert not blindness("dns", FailureKind.UNAVAILABLE)  # it declared no window
