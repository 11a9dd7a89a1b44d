"""Discord: `?wait=true`, mentions limited to the paged people, embed limits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from monitor.core.model import Severity
from monitor.notifiers.base import NotificationEvent, NotifierError, Recipient
from tests.notifiers.conftest import Receiver
from tests.notifiers.samples import DISCORD_URL_PATH, RESOLVE, TRIGGER, make


async def test_waits_for_the_message(receiver: Receiver, session) -> None:
    receiver.answer(200, json.dumps({"id": "1172", "channel_id": "9001"}))
    await make("discord", receiver.base, session).send(TRIGGER)
    [seen] = receiver.seen
    assert seen.path == DISCORD_URL_PATH
    assert seen.query == {"wait": "true"}


async def test_a_thread_id_in_the_url_is_kept(receiver: Receiver, session) -> None:
    url = f"{receiver.base}{DISCORD_URL_PATH}?thread_id=42"
    await make("discord", receiver.base, session, url=url).send(TRIGGER)
    assert receiver.seen[0].query == {"thread_id": "42", "wait": "true"}


async def test_mentions_only_the_paged_people(receiver: Receiver, session) -> None:
    n = replace(
        TRIGGER,
        text="@everyone <@&55555> look",
        recipients=(Recipient("a", discord="111"), Recipient("b"), Recipient("c", discord="333")),
    )
    await make("discord", receiver.base, session).send(n)
    body = receiver.seen[0].json()
    assert body["content"] == "<@111> <@333>"
    assert body["allowed_mentions"] == {"parse": [], "users": ["111", "333"]}
    assert body["embeds"][0]["description"] == "@everyone <@&55555> look"


def test_no_recipients_no_content_and_no_pings() -> None:
    body = make("discord").build_payload(RESOLVE)
    assert "content" not in body
    assert body["allowed_mentions"] == {"parse": [], "users": []}


async def test_rate_limit_in_the_body(receiver: Receiver, session) -> None:
    receiver.answer(
        429,
        json.dumps(
            {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}
        ),
    )
    with pytest.raises(NotifierError) as info:
        await make("discord", receiver.base, session).send(TRIGGER)
    assert (info.value.retryable, info.value.retry_after_s) == (True, 64.57)


async def test_no_content_is_a_success(receiver: Receiver, session) -> None:
    receiver.answer(204, "")
    await make("discord", receiver.base, session).send(TRIGGER)


async def test_invalid_form_body_is_permanent(receiver: Receiver, session) -> None:
    receiver.answer(400, json.dumps({"message": "Invalid Form Body", "code": 50035}))
    with pytest.raises(NotifierError) as info:
        await make("discord", receiver.base, session).send(TRIGGER)
    assert not info.value.retryable
    assert "Invalid Form Body" in str(info.value)


def test_embed_limits() -> None:
    n = replace(
        TRIGGER,
        title="t" * 300,
        text="x" * 10_000,
        links={"l" * 50: "https://e.example/" + "p" * 2000},
    )
    embed = make("discord").build_payload(n)["embeds"][0]
    assert len(embed["title"]) == 256
    assert len(embed["description"]) <= 4096
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= 6000


def test_an_empty_text_has_no_description() -> None:
    assert (
        "description" not in make("discord").build_payload(replace(TRIGGER, text=""))["embeds"][0]
    )


@pytest.mark.parametrize(
    ("event", "severity", "colour"),
    [
        (NotificationEvent.TRIGGER, Severity.P0, 0xD00000),
        (NotificationEvent.TRIGGER, Severity.P1, 0xFF8C00),
        (NotificationEvent.TRIGGER, Severity.P2, 0xF2C744),
        (NotificationEvent.RESOLVE, Severity.P0, 0x2EB67D),
        (NotificationEvent.TRIGGER, None, 0x95A5A6),
    ],
)
def test_colour_is_a_decimal_integer(event, severity, colour) -> None:
    embed = make("discord").build_payload(replace(TRIGGER, event=event, severity=severity))[
        "embeds"
    ][0]
    assert embed["color"] == colour


def test_drill() -> None:
    body = make("discord").build_payload(replace(TRIGGER, drill=True))
    assert body["content"].startswith("**DRILL**")
    assert body["embeds"][0]["title"].startswith("DRILL ")
    assert body["embeds"][0]["footer"]["text"].startswith("DRILL")
