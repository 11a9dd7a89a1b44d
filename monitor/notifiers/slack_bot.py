"""`type: slack_bot`: a Slack app's bot token; one thread per incident.

The first message about an incident is posted with `chat.postMessage`; its `ts` is kept
in the store, so after a restart later messages still go in the same thread
(`thread_ts`) and `chat.update` keeps the root message showing the current state.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, SecretStr

from monitor.notifiers.base import (
    Notification,
    Notifier,
    NotifierConfigBase,
    NotifierError,
    post_json,
)
from monitor.notifiers.slack import slack_message

__all__ = ["SlackBotConfig", "SlackBotNotifier"]

# Errors retrying cannot fix (https://api.slack.com/methods/chat.postMessage#errors).
_PERMANENT = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "missing_scope", "channel_not_found", "not_in_channel", "is_archived", "invalid_arguments",
    "msg_too_long", "no_text", "invalid_blocks", "restricted_action", "message_not_found",
})  # fmt: skip


class SlackBotConfig(NotifierConfigBase):
    type: Literal["slack_bot"]
    token: SecretStr
    channel: str = Field(min_length=1, description="Channel id (C…) or name")
    api_url: str = "https://slack.com/api"


class SlackBotNotifier(Notifier[SlackBotConfig]):
    Config = SlackBotConfig

    def build_payload(self, n: Notification) -> dict[str, Any]:
        return {"channel": self.config.channel, **slack_message(n)}

    def _key(self, n: Notification) -> str | None:
        return f"slack_bot:{self.name}:{n.incident_id}" if n.incident_id is not None else None

    async def send(self, n: Notification) -> None:
        key = self._key(n)
        root = await self.state.kv_get(key) if key and self.state else None
        if root is None:
            answer = await self._call("chat.postMessage", self.build_payload(n))
            if key and self.state and isinstance(answer.get("ts"), str):
                await self.state.kv_set(key, answer["ts"])
            return
        await self._call("chat.postMessage", {**self.build_payload(n), "thread_ts": root})
        # The root message shows where the incident stands now.
        await self._call(
            "chat.update", {"channel": self.config.channel, "ts": root, **slack_message(n)}
        )

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.config.token.get_secret_value()}"}
        text = await post_json(self.session, f"Slack API ({self.name})", f"{self.config.api_url.rstrip('/')}/{method}",
                               body, headers=headers)  # fmt: skip
        try:
            answer = json.loads(text)
        except ValueError:
            raise NotifierError(
                f"Slack API ({self.name}): {method} answered non-JSON", retryable=True
            ) from None
        if not isinstance(answer, dict):
            raise NotifierError(
                f"Slack API ({self.name}): {method} answered {type(answer).__name__}",
                retryable=True,
            )
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown_error"))
            # chat.update on a deleted root message is not worth retrying either.
            raise NotifierError(
                f"Slack API ({self.name}): {method}: {error}", retryable=error not in _PERMANENT
            )
        return answer
