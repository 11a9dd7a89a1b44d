"""What a notifier type declares instead of the pager and the on-call model knowing it:
the contact it reads from each person, and the incident events it follows."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import (
    INCIDENT_LIFECYCLE,
    Notification,
    Notifier,
    NotifierConfigBase,
    Recipient,
)
from monitor.paging.oncall import Person
from monitor.paging.pager import from_payload, to_payload
from tests.fakes import FakeClock
from tests.notifiers.samples import TRIGGER
from tests.test_paging import World, stop


class Matrix(Notifier[Any]):
    """A plugin type with a contact of its own, checked by its own rule."""

    class Config(NotifierConfigBase):
        type: Literal["matrix"]

    contact = "matrix"
    follows = INCIDENT_LIFECYCLE

    @classmethod
    def validate_contact(cls, value: str) -> str:
        if not value.startswith("@") or ":" not in value:
            raise ValueError("a Matrix user id looks like @name:server")
        return value.lower()

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {"to": [r.contact("matrix") for r in n.recipients]}

    async def send(self, n: Notification) -> None:
        return None


@pytest.fixture
def matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NOTIFIERS, "matrix", Matrix)


def test_the_documented_keys_are_contacts() -> None:
    legacy = Person.model_validate(
        {"name": "alice", "slack": "U012ABCDEF", "email": "a@example.org", "github": "alice"}
    )
    mapped = Person.model_validate(
        {"name": "alice", "contacts": {"slack": "U012ABCDEF", "email": "a@example.org",
                                       "github": "alice"}}
    )  # fmt: skip
    assert legacy.contacts == mapped.contacts == {
        "slack": "U012ABCDEF", "email": "a@example.org", "github": "alice",
    }  # fmt: skip
    assert legacy.slack == "U012ABCDEF"  # still readable as given


def test_a_contact_given_twice_differently_is_refused() -> None:
    with pytest.raises(ValidationError, match="slack is given twice"):
        Person.model_validate({"name": "a", "slack": "U1", "contacts": {"slack": "U2"}})
    same = Person.model_validate({"name": "a", "slack": "U1", "contacts": {"slack": "U1"}})
    assert same.contacts == {"slack": "U1"}


def test_a_contact_no_notifier_reads_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError) as info:
        Person.model_validate({"name": "a", "contacts": {"matrix": "@a:example.org"}})
    message = info.value.errors()[0]["msg"]
    assert "no notifier reads the contact 'matrix'" in message
    assert "discord, email, github, pagerduty, slack" in message


def test_a_plugin_validates_its_own_contact(matrix: None) -> None:
    person = Person.model_validate({"name": "a", "contacts": {"matrix": "@A:Example.org"}})
    assert person.contacts == {"matrix": "@a:example.org"}  # as the notifier keeps it
    with pytest.raises(ValidationError, match="looks like @name:server"):
        Person.model_validate({"name": "a", "contacts": {"matrix": "alice"}})


def test_each_builtin_reads_the_contact_it_declares() -> None:
    readers = {t: cls.contact for t, cls in NOTIFIERS.items() if cls.contact}
    assert readers == {
        "discord": "discord", "email": "email", "pagerduty": "pagerduty",
        "slack": "slack", "slack_bot": "slack",
    }  # fmt: skip
    follows = {t for t, cls in NOTIFIERS.items() if cls.follows}
    assert follows == {"pagerduty", "slack_bot"}


def test_recipients_round_trip_and_earlier_payloads_still_read() -> None:
    bob = Recipient("bob", {"matrix": "@bob:example.org"}, email="bob@example.org")
    assert bob.contacts == {"matrix": "@bob:example.org", "email": "bob@example.org"}
    n = Notification(**{**_fields(TRIGGER), "recipients": (bob,)})
    assert from_payload(to_payload(n)).recipients == (bob,)
    # An outbox row written before contacts were a mapping: one key per contact, None unset.
    doc = json.loads(to_payload(n))
    doc["recipients"] = [
        {
            "name": "bob",
            "slack": None,
            "discord": None,
            "email": "bob@example.org",
            "pagerduty": None,
        }
    ]
    [old] = from_payload(json.dumps(doc)).recipients
    assert old == Recipient("bob", {"email": "bob@example.org"})
    assert old.contact("email") == "bob@example.org"
    assert old.contact("slack") is None


def _fields(n: Notification) -> dict[str, Any]:
    return {f: getattr(n, f) for f in n.__dataclass_fields__}


async def test_a_plugin_that_follows_incidents_hears_their_life(
    matrix: None, clock: FakeClock, metrics
) -> None:
    w = World(clock, metrics, types={"slack": "slack", "pd": "pagerduty", "mx": "matrix"})
    tasks = await w.start()
    incident_id = await w.fail()
    await clock.advance(60)
    await w.manager.acknowledge(incident_id, "alice")
    await w.manager.resolve(incident_id, "alice")
    await clock.advance(60)
    heard = [e for _, n, e, _ in w.sent if n == "mx"]
    assert "acknowledge" in heard
    assert "resolve" in heard
    await stop(tasks)
