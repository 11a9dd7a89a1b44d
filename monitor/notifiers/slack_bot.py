"""`type: slack_bot`: a Slack app's bot token; one thread per incident.

The first message about an incident is posted with `chat.postMessage`; the channel id and
`ts` it returns are kept in the state store under `slack_bot:<notifier>:<incident id>`,
so later messages (even after a restart) are replies in that thread (`thread_ts`), and
`chat.update` keeps the root message showing where the incident stands.

The Web API answers HTTP 200 with `{"ok": false, "error": "…"}` on errors: the transient
ones (`ratelimited`, `internal_error`…) are retried, any other error is permanent. HTTP
429 (with `Retry-After`) and 5xx are retried as for every HTTP notifier.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import structlog
from pydantic import Field, SecretStr

from monitor.notifiers.base import (
    INCIDENT_LIFECYCLE,
    Notification,
    Notifier,
    NotifierConfigBase,
    NotifierError,
    post,
)
from monitor.notifiers.slack import slack_message

__all__ = ["SlackApiError", "SlackBotConfig", "SlackBotNotifier"]

log = structlog.stdlib.get_logger(__name__)

# Errors worth another try (https://api.slack.com/methods/chat.postMessage#errors); any
# other (invalid_auth, channel_not_found, not_in_channel, is_archived…) is permanent,
# so that a broken setup is reported instead of retried forever.
_TRANSIENT = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "team_added_to_org",
})  # fmt: skip
# chat.update errors that mean the root message is gone or frozen: start a new thread.
_ROOT_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class SlackApiError(NotifierError):
    """The Web API answered `ok: false`; `error` is Slack's error code."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message, retryable=error in _TRANSIENT)
        self.error = error


class SlackBotConfig(NotifierConfigBase):
    type: Literal["slack_bot"]
    token: SecretStr  # xoxb-…, scope chat:write
    channel: str = Field(min_length=1, description="Channel id (C…) or name")
    api_url: str = Field(default="https://slack.com/api", pattern=r"^https?://\S+$")


class SlackBotNotifier(Notifier[SlackBotConfig]):
    """Keeps one thread per incident; messages about no incident are posted alone."""

    Config = SlackBotConfig
    contact = "slack"  # mentions the paged by member id
    follows = INCIDENT_LIFECYCLE  # acknowledges and resolves what it opened

    def build_payload(self, n: Notification) -> dict[str, Any]:
        """The `chat.postMessage` body of `n` as a new message (`send` adds `thread_ts`
        for a reply in the incident's thread)."""
        return {"channel": self.config.channel, **slack_message(n)}

    def _key(self, n: Notification) -> str | None:
        return f"slack_bot:{self.name}:{n.incident_id}" if n.incident_id is not None else None

    async def send(self, n: Notification) -> None:
        key = self._key(n)
        root = await self._root(key)
        if root is None:
            await self._post_root(n, key)
            return
        channel, ts = root
        # The root first: if the reply then fails, the retry only repeats this edit.
        try:
            await self._call(
                "chat.update", {"channel": channel, "ts": ts, **slack_message(n, mention=False)}
            )
        except SlackApiError as exc:
            if exc.error not in _ROOT_GONE:
                raise
            log.warning("slack_thread_lost", notifier=self.name, incident_id=n.incident_id,
                        error=exc.error)  # fmt: skip
            await self._post_root(n, key)
            return
        await self._call("chat.postMessage", {**self.build_payload(n), "channel": channel,
                                              "thread_ts": ts})  # fmt: skip

    async def _root(self, key: str | None) -> tuple[str, str] | None:
        """The channel id and `ts` of the incident's root message, if one was posted."""
        if key is None or self.state is None:
            return None
        value = await self.state.kv_get(key)
        if value is None:
            return None
        try:
            doc = json.loads(value)
            return str(doc["channel"]), str(doc["ts"])
        except (ValueError, TypeError, KeyError):
            return self.config.channel, value  # a bare ts: the configured channel

    async def _post_root(self, n: Notification, key: str | None) -> None:
        answer = await self._call("chat.postMessage", self.build_payload(n))
        ts, channel = answer.get("ts"), answer.get("channel")
        if key is None or self.state is None or not isinstance(ts, str):
            return
        # chat.update needs the channel id, which a configured name is not.
        root = {"channel": channel if isinstance(channel, str) else self.config.channel, "ts": ts}
        try:
            await self.state.kv_set(key, json.dumps(root))
        except Exception as exc:  # noqa: BLE001  posted already: a retry would post it twice
            log.warning("slack_thread_not_saved", notifier=self.name, error=repr(exc))

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"Slack API ({self.name}) {method}"
        headers = {
            "Authorization": f"Bearer {self.config.token.get_secret_value()}",
            "Content-Type": "application/json; charset=utf-8",
        }
        text = await post(
            self.session, what, f"{self.config.api_url.rstrip('/')}/{method}",
            data=json.dumps(body).encode(), headers=headers, secrets=self.secrets,
            clock=self.clock,
        )  # fmt: skip
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise NotifierError(f"{what} answered something other than a JSON object",
                                retryable=True)  # fmt: skip
        if answer.get("ok") is not True:
            error = str(answer.get("error") or "unknown_error")[:100]
            raise SlackApiError(f"{what}: {error}", error=error)
        return answer
