"""The email notifier against a minimal local SMTP server (aiosmtpd is not installed)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from email import message_from_bytes, policy

import pytest

from monitor.notifiers.base import Notification, NotifierError
from monitor.notifiers.email import message_id
from tests.notifiers.samples import (
    ACKNOWLEDGE,
    HANDOFF,
    RESOLVE,
    SMTP_PASSWORD,
    TRIGGER,
    make,
)


@dataclass
class SmtpServer:
    """Speaks just enough SMTP. `replies` overrides the answer to a verb (`RCPT`, `MAIL`,
    `DATA`, `AUTH`); `silent` never greets (a hung server)."""

    port: int = 0
    replies: dict[str, str] = field(default_factory=dict)
    silent: bool = False
    auth: bool = False
    messages: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        try:
            if self.silent:
                await reader.read()
                return
            say("220 test ESMTP")
            sender, rcpts = "", []
            while line := await reader.readline():
                command = line.decode().strip()
                verb = command.split(" ")[0].upper()
                if verb in self.replies:
                    say(self.replies[verb])
                elif verb == "EHLO":
                    say("250-test" if self.auth else "250 test")
                    if self.auth:
                        say("250 AUTH PLAIN")
                elif verb == "AUTH":
                    self.logins.append(base64.b64decode(command.split(" ")[2]).decode())
                    say("235 2.7.0 accepted")
                elif verb == "MAIL":
                    sender = command[10:].strip("<>")
                    say("250 ok")
                elif verb == "RCPT":
                    rcpts.append(command[8:].strip("<>"))
                    say("250 ok")
                elif verb == "DATA":
                    say("354 go on")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.messages.append(data[: -len(b"\r\n.\r\n")])
                    self.envelopes.append((sender, rcpts))
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    await writer.drain()
                    break
                else:
                    say("502 not here")
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield server


async def test_sends_one_message(smtp: SmtpServer) -> None:
    await make("email", port=smtp.port).send(TRIGGER)
    [raw] = smtp.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "[P0] npm-winglang is down"
    assert message["From"] == "monitor@example.org"
    assert message["To"] == "oncall@example.org, alice@example.org, bob@example.org"
    assert message["Message-ID"] == "<incident.7.1795000000.p0s1.pd.alice@example.org>"
    assert message["References"] == "<incident.7@example.org>"
    assert message["Date"] == "Sun, 22 Nov 2026 12:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content().replace("\r\n", "\n")  # CRLF on the wire
    assert body.startswith(TRIGGER.text + "\n\nSeverity: P0\n")
    assert "Runbook: https://example.org/runbooks/npm\n" in body
    assert smtp.envelopes == [
        ("monitor@example.org", ["oncall@example.org", "alice@example.org", "bob@example.org"])
    ]


async def test_logs_in(smtp: SmtpServer) -> None:
    smtp.auth = True
    await make("email", port=smtp.port, username="monitor", password=SMTP_PASSWORD).send(HANDOFF)
    assert smtp.logins == [f"\0monitor\0{SMTP_PASSWORD}"]
    assert len(smtp.messages) == 1


async def test_bad_credentials_are_permanent_and_not_shown(smtp: SmtpServer) -> None:
    smtp.auth = True
    smtp.replies["AUTH"] = f"535 5.7.8 authentication failed for {SMTP_PASSWORD}"
    with pytest.raises(NotifierError) as info:
        await make("email", port=smtp.port, username="monitor", password=SMTP_PASSWORD).send(
            TRIGGER
        )
    assert not info.value.retryable
    assert (
        str(info.value)
        == "email (email): the server answered 535 5.7.8 authentication failed for <redacted>"
    )


@pytest.mark.parametrize(
    ("verb", "reply", "retryable"),
    [
        ("RCPT", "550 5.1.1 no such user", False),
        ("RCPT", "451 4.7.1 greylisted, try again later", True),
        ("MAIL", "553 5.7.1 sender rejected", False),
        ("MAIL", "421 4.3.2 too busy", True),
        ("DATA", "554 5.7.1 message refused", False),
        ("DATA", "452 4.3.1 insufficient storage", True),
    ],
)
async def test_refusals(smtp: SmtpServer, verb: str, reply: str, retryable: bool) -> None:
    smtp.replies[verb] = reply
    with pytest.raises(NotifierError) as info:
        await make("email", port=smtp.port).send(TRIGGER)
    assert info.value.retryable is retryable
    assert reply in str(info.value)
    assert smtp.messages == []


async def test_starttls_the_server_lacks_is_permanent(smtp: SmtpServer) -> None:
    with pytest.raises(NotifierError) as info:
        await make("email", port=smtp.port, starttls=True).send(TRIGGER)
    assert not info.value.retryable
    assert "STARTTLS" in str(info.value)
    # The defaults (587 + STARTTLS) against a plain relay: the error says what to set.
    assert "offers no STARTTLS" in str(info.value)
    assert "`port: 25` and `starttls: false`" in str(info.value)
    assert smtp.messages == []


async def test_server_down_is_retryable() -> None:
    with pytest.raises(NotifierError) as info:
        await make("email", port=9).send(TRIGGER)
    assert info.value.retryable
    assert "nothing accepts connections on 127.0.0.1:9" in str(info.value)


async def test_the_default_port_refused_says_what_to_set() -> None:
    with pytest.raises(NotifierError) as info:
        await make("email", port=587).send(TRIGGER)
    assert info.value.retryable
    assert "127.0.0.1:587" in str(info.value)
    assert "`port: 25` and `starttls: false`" in str(info.value)


@pytest.mark.parametrize("lifecycle", [ACKNOWLEDGE, RESOLVE])
async def test_lifecycle_without_a_team_list_is_no_failure(lifecycle: Notification) -> None:
    # Nobody to tell (no `to`, nobody paged by this message): skipped, not a dead letter.
    await make("email", to=[]).send(dc_replace(lifecycle, recipients=()))


async def test_a_hung_server_is_retryable(smtp: SmtpServer) -> None:
    smtp.silent = True
    with pytest.raises(NotifierError) as info:
        await make("email", port=smtp.port, timeout="100ms").send(TRIGGER)
    assert info.value.retryable


async def test_nobody_to_send_to_is_permanent() -> None:
    n = dc_replace(TRIGGER, recipients=())
    with pytest.raises(NotifierError) as info:
        await make("email", to=[]).send(n)
    assert not info.value.retryable


def test_recipients_are_added_once() -> None:
    payload = make("email", to=["alice@example.org", "ops@example.org"]).build_payload(TRIGGER)
    assert payload["to"] == ["alice@example.org", "ops@example.org", "bob@example.org"]


def test_drill_subject_and_body() -> None:
    payload = make("email").build_payload(dc_replace(TRIGGER, drill=True))
    assert payload["subject"].startswith("DRILL [P0] ")
    assert payload["body"].startswith("DRILL: a test of the paging path")


def test_message_id() -> None:
    assert message_id("incident:7:1795000000:p0s1:pd:alice", "m@example.org") == (
        "<incident.7.1795000000.p0s1.pd.alice@example.org>"
    )
    assert message_id("a b<c>@d", "m@example.org") == "<a.b.c.d@example.org>"
    assert message_id("::", "m@example.org") == "<notification@example.org>"
    long = message_id("k" * 500, "m@example.org")
    assert len(long) < 100
    assert long == message_id("k" * 500, "m@example.org")
