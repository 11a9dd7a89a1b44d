"""The email notifier against a minimal local SMTP server."""

from __future__ import annotations

import asyncio
from email import message_from_bytes

import pytest

from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import NotifierError
from tests.notifiers.test_notifiers import TRIGGER


class SmtpServer:
    """Speaks just enough SMTP; `refuse_rcpt` answers RCPT with that code."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refuse_rcpt: int | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 test ESMTP")
        while line := await reader.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 test")
            elif verb == "RCPT" and self.refuse_rcpt:
                say(f"{self.refuse_rcpt} refused")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                self.messages.append(data[: -len(b"\r\n.\r\n")])
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                await writer.drain()
                break
            else:
                say("502 not here")
            await writer.drain()
        writer.close()


@pytest.fixture
async def smtp():
    server = SmtpServer()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    async with srv:
        yield server


def mailer(port: int, **extra: object):
    cls = NOTIFIERS["email"]
    config = cls.Config.model_validate(
        {"type": "email", "host": "127.0.0.1", "port": port, "starttls": False,
         "sender": "monitor@example.org", "to": ["alert@example.org"], **extra}
    )  # fmt: skip
    return cls("mail", config, None)  # type: ignore[arg-type]  # SMTP needs no HTTP session


async def test_sends_one_message(smtp) -> None:
    await mailer(smtp.port).send(TRIGGER)
    message = message_from_bytes(smtp.messages[0])
    assert message["Subject"] == "[P0] trigger: npm-winglang is down"
    assert message["To"] == "alert@example.org"
    assert message["Message-ID"] == "<incident.7.1795000000.p0s1.pd.alice@project-asset-monitor>"
    assert "Runbook: https://example.org/runbooks/npm" in message.get_payload()


@pytest.mark.parametrize(("code", "retryable"), [(451, True), (550, False)])
async def test_refusals(smtp, code: int, retryable: bool) -> None:
    smtp.refuse_rcpt = code
    with pytest.raises(NotifierError) as info:
        await mailer(smtp.port).send(TRIGGER)
    assert info.value.retryable is retryable


async def test_server_down_is_retryable() -> None:
    with pytest.raises(NotifierError) as info:
        await mailer(9).send(TRIGGER)
    assert info.value.retryable
