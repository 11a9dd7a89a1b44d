"""Sample notifications and configs shared by the notifier tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp

from monitor.core.model import Severity
from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import (
    KeyValue,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierContext,
    Recipient,
)

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

ALICE = Recipient("alice", slack="U012ABC", discord="123456789012345678", email="alice@example.org")
BOB = Recipient("bob", email="bob@example.org")  # no chat ids: named, not mentioned

TRIGGER = Notification(
    idempotency_key="incident:7:1795000000:p0s1:pd:alice",
    event=NotificationEvent.TRIGGER,
    incident_id=7,
    dedup_key="npm-winglang",
    title="npm-winglang is down",
    text="winglang@0.85.49: tarball HEAD answered 404 (expected 200) since 11:58 UTC",
    severity=Severity.P0,
    status="triggered",
    check="npm-winglang",
    recipients=(ALICE, BOB),
    runbook="https://example.org/runbooks/npm",
    links={
        "failing run": "https://github.com/winglang/wing/actions/runs/42",
        "incident": "https://monitor.example.org/incidents/7",
    },
    created_at=AT,
)
CHANNEL = replace(TRIGGER, idempotency_key="incident:7:1795000000:p0s0:slack", recipients=())
ACKNOWLEDGE = replace(
    TRIGGER,
    idempotency_key="incident:7:acknowledged:1795000300:pd",
    event=NotificationEvent.ACKNOWLEDGE,
    text="acknowledged by alice",
    status="acknowledged",
    recipients=(),
    links={},
    actor="alice",
)
RESOLVE = replace(
    TRIGGER,
    idempotency_key="incident:7:resolved:1795003600:pd",
    event=NotificationEvent.RESOLVE,
    text="recovered: 200 OK in 120 ms",
    status="resolved",
    recipients=(),
    links={},
    actor="monitor",
)
DRILL = Notification(
    idempotency_key="incident:9:1795007200:p0s1:pd:alice",
    event=NotificationEvent.TRIGGER,
    incident_id=9,
    dedup_key="drill:0123456789ab",
    title="DRILL: P2 paging test",
    text="a drill of the paging path: acknowledge it from your phone",
    severity=Severity.P2,
    status="triggered",
    check=None,
    recipients=(ALICE,),
    drill=True,
    created_at=AT,
)
HANDOFF = Notification(
    idempotency_key="handoff:us:1795050000",
    event=NotificationEvent.HANDOFF,
    incident_id=None,
    dedup_key=None,
    title="Handoff: us",
    text="On call now (us): primary bob, secondary alice.\n#7 P1 acknowledged: npm-winglang is down (owner: alice)",
    severity=None,
    status=None,
    check=None,
    created_at=AT,
)
CASES = {
    "trigger": TRIGGER,
    "channel": CHANNEL,
    "acknowledge": ACKNOWLEDGE,
    "resolve": RESOLVE,
    "drill": DRILL,
    "handoff": HANDOFF,
}

# Secrets as tests configure them: none of them may appear in an error message.
SLACK_URL_PATH = "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD_URL_PATH = "/api/webhooks/223456789012345678/dIsCoRdToKeN-0123456789abcdef"
ROUTING_KEY = "R0UTINGKEY00000000000000000000AB"
PERSONAL_KEY = "B0BSKEY0000000000000000000000000"
BOT_TOKEN = "xoxb-0001-0002-s3cretb0t"
WEBHOOK_SECRET = "s3cret-signing-key"
HEADER_TOKEN = "Bearer h3ader-t0ken"
SMTP_PASSWORD = "smtp-pa55word"
SECRETS = (
    SLACK_URL_PATH,
    "XXXXXXXXXXXXXXXXXXXXXXXX",
    DISCORD_URL_PATH,
    "dIsCoRdToKeN-0123456789abcdef",
    ROUTING_KEY,
    PERSONAL_KEY,
    BOT_TOKEN,
    WEBHOOK_SECRET,
    HEADER_TOKEN,
    SMTP_PASSWORD,
)


def config(kind: str, base: str = "https://example.invalid") -> dict[str, Any]:
    """A config of every option for `kind`, its URLs under `base`."""
    configs: dict[str, dict[str, Any]] = {
        "console": {"type": "console"},
        "slack": {"type": "slack", "url": f"{base}{SLACK_URL_PATH}"},
        "slack_bot": {"type": "slack_bot", "token": BOT_TOKEN, "channel": "#alerts",
                      "api_url": f"{base}/api"},
        "discord": {"type": "discord", "url": f"{base}{DISCORD_URL_PATH}"},
        "pagerduty": {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{base}/v2/enqueue",
                      "source": "monitor.example.org"},
        "webhook": {"type": "webhook", "url": f"{base}/hooks/monitor", "secret": WEBHOOK_SECRET,
                    "headers": {"Authorization": HEADER_TOKEN, "X-Team": "wing"}},
        "email": {"type": "email", "host": "127.0.0.1", "port": 2525, "starttls": False,
                  "sender": "monitor@example.org", "to": ["oncall@example.org"]},
    }  # fmt: skip
    return configs[kind]


def make(
    kind: str,
    base: str = "https://example.invalid",
    session: aiohttp.ClientSession | None = None,
    state: KeyValue | None = None,
    **overrides: Any,
) -> Notifier[Any]:
    """A notifier of `kind`; with no session it can only build payloads."""
    cls = NOTIFIERS[kind]
    model = cls.Config.model_validate({**config(kind, base), **overrides})
    # Building a payload needs no session: tests that send pass a real one.
    ctx = NotifierContext(cast(aiohttp.ClientSession, session), state)
    return cls(kind, model, ctx)


class MemoryKV:
    """The state store notifiers are given, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def kv_get(self, key: str) -> str | None:
        return self.data.get(key)

    async def kv_set(self, key: str, value: str) -> None:
        self.data[key] = value


GOLDEN_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "notifiers"
