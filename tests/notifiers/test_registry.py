"""The registry, third-party plugins, the seam itself and the console notifier."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import Any, Literal

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

import monitor.notifiers
from monitor.notifiers import NOTIFIERS, load_plugins
from monitor.notifiers.base import (
    Notification,
    Notifier,
    NotifierConfigBase,
    NotifierContext,
)
from monitor.notifiers.console import ConsoleConfig, ConsoleNotifier
from tests.notifiers.samples import HANDOFF, TRIGGER, MemoryKV, config, make


def test_every_module_is_registered_under_its_type() -> None:
    modules = [m.name for m in pkgutil.iter_modules(monitor.notifiers.__path__) if m.name != "base"]
    assert sorted(modules) == sorted(NOTIFIERS)
    for name in modules:
        module = importlib.import_module(f"monitor.notifiers.{name}")
        [cls] = [
            c for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Notifier) and c.__module__ == module.__name__
        ]  # fmt: skip
        assert NOTIFIERS[name] is cls
        assert typing.get_args(cls.Config.model_fields["type"].annotation) == (name,)
        assert cls.__name__ in module.__all__
        assert cls.Config.__name__ in module.__all__


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
def test_configs_refuse_unknown_keys(kind: str) -> None:
    with pytest.raises(ValidationError):
        NOTIFIERS[kind].Config.model_validate({**config(kind), "colour": "red"})


@pytest.mark.parametrize("kind", ["slack", "discord", "webhook"])
def test_a_bad_url_is_refused_without_showing_it(kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        NOTIFIERS[kind].Config.model_validate({**config(kind), "url": "hooks.example/T0K3N-s3cret"})
    # The message does not repeat the URL (pydantic still keeps it as the error's `input`).
    [error] = info.value.errors()
    assert error["msg"] == "Value error, must be an http:// or https:// URL"


def test_secrets_are_masked_in_config_dumps() -> None:
    dumped = repr(NOTIFIERS["slack_bot"].Config.model_validate(config("slack_bot")))
    assert "xoxb" not in dumped


class Good(Notifier[Any]):
    class Config(NotifierConfigBase):
        type: Literal["good"]

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {"title": n.title}

    async def send(self, n: Notification) -> None:
        return None


class WrongType(Good):
    class Config(NotifierConfigBase):
        type: Literal["something-else"]


class FakeSlack(Good):
    class Config(NotifierConfigBase):
        type: Literal["slack"]


class NoConfig(Notifier[Any]):
    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {}

    async def send(self, n: Notification) -> None:
        return None


class EntryPoint:
    """What `importlib.metadata.entry_points()` yields: a name, a value, `load()`."""

    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"plugin_pkg.mod:{name}", target

    def load(self) -> object:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    fresh = dict(NOTIFIERS)
    monkeypatch.setattr("monitor.notifiers.NOTIFIERS", fresh)
    return fresh


def test_plugins_are_loaded_and_broken_ones_skipped(registry, monkeypatch) -> None:
    groups: list[str] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        groups.append(group)
        return [
            EntryPoint("good", Good),
            EntryPoint("broken", ImportError("No module named 'plugin_dep'")),
            EntryPoint("crashes", RuntimeError("boom at import")),
            EntryPoint("odd", object),
            EntryPoint("wrong", WrongType),
            EntryPoint("noconfig", NoConfig),
            EntryPoint("slack", FakeSlack),  # a built-in's name
        ]

    monkeypatch.setattr("monitor.notifiers.entry_points", entry_points)
    with capture_logs() as logs:
        assert load_plugins() == ["good"]
    assert groups == ["monitor.notifiers"]
    assert registry["good"] is Good
    assert registry["slack"] is NOTIFIERS["slack"]
    skipped = {e["plugin"]: e["reason"] for e in logs if e["event"] == "notifier_plugin_skipped"}
    assert set(skipped) == {"broken", "crashes", "odd", "wrong", "noconfig", "slack"}
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "notifier_plugin_skipped")
    assert skipped["broken"] == "cannot be loaded: ImportError: No module named 'plugin_dep'"
    assert skipped["wrong"] == 'its Config must declare type: Literal["wrong"]'
    assert "taken" in skipped["slack"]
    # Loading again adds nothing and warns about nothing new that works.
    with capture_logs():
        assert load_plugins() == []
    assert registry["good"] is Good


async def test_a_plugin_notifier_works_like_a_builtin(registry, monkeypatch, session) -> None:
    monkeypatch.setattr(
        "monitor.notifiers.entry_points", lambda *, group: [EntryPoint("good", Good)]
    )
    load_plugins()
    cls = registry["good"]
    notifier = cls("mine", cls.Config.model_validate({"type": "good"}), NotifierContext(session))
    assert notifier.build_payload(TRIGGER) == {"title": TRIGGER.title}
    await notifier.send(TRIGGER)


def test_no_plugins_installed_changes_nothing(registry) -> None:
    before = dict(registry)
    assert load_plugins("monitor.notifiers.none-such-group") == []
    assert registry == before


def test_a_bare_session_is_accepted_and_state_set_later(session) -> None:
    notifier = ConsoleNotifier("c", ConsoleConfig(type="console"), session)
    assert notifier.session is session
    assert notifier.state is None
    kv = MemoryKV()
    notifier.state = kv
    assert notifier.ctx == NotifierContext(session, kv)


def test_secrets_of_the_config_are_collected() -> None:
    assert make("pagerduty").secrets == ("R0UTINGKEY00000000000000000000AB",)
    assert make("console").secrets == ()


async def test_console_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    console = make("console")
    await console.send(TRIGGER)
    await console.send(HANDOFF)
    assert capsys.readouterr().out.splitlines() == [
        "[P0] npm-winglang is down: winglang@0.85.49: tarball HEAD answered 404 (expected 200) "
        "since 11:58 UTC → alice, bob",
        "Handoff: us: On call now (us): primary bob, secondary alice. | #7 P1 acknowledged: "
        "npm-winglang is down (owner: alice)",
    ]
