"""Escalation policies: which steps page whom, and when. The stepping is pure.

A policy is frozen into the incident's escalation when it starts, so a config reload
never changes an escalation under way; who is on call is resolved when each step runs.
Due times accumulate from the planned times, never from "now", so after a crash the
remaining steps keep their original times.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, model_validator

from monitor.core.configtypes import Duration, PositiveDuration, StrictModel, format_duration
from monitor.core.model import EscalationState, Severity

__all__ = ["Action", "EscalationConfig", "Policy", "Step", "due_actions", "freeze", "thaw"]

Target = Literal["primary", "secondary", "rotation"]


class Step(StrictModel):
    """Exactly one of: post to a notifier's channel, page someone, or wait."""

    post: str | None = Field(default=None, description="A notifier name: post to its channel.")
    page: Target | list[str] | None = Field(
        default=None,
        description="primary, secondary, rotation (everyone on it), or people by name.",
    )
    wait: PositiveDuration | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [k for k in ("post", "page", "wait") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a step is exactly one of post, page or wait (got {', '.join(given) or 'none'})"
            )
        if isinstance(self.page, list) and not self.page:
            raise ValueError("page: name at least one person")
        return self


class Policy(StrictModel):
    steps: list[Step] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=20, description="Extra passes after the first.")
    repeat_from: int = Field(default=0, ge=0, description="Step index each repeat starts at.")

    @model_validator(mode="after")
    def _repeat_in_range(self) -> Policy:
        if self.repeat_from >= len(self.steps):
            raise ValueError(
                f"repeat_from {self.repeat_from} is past the last step ({len(self.steps) - 1})"
            )
        return self


class EscalationConfig(StrictModel):
    """The `escalation:` section."""

    policies: dict[str, Policy] = Field(default_factory=dict)
    severities: dict[Literal["P0", "P1", "P2"], str] = Field(
        default_factory=dict, description="Policy per severity; unnamed ones use `default`."
    )
    channel: str | None = Field(
        default=None,
        description="Notifier that gets acknowledge, reassign, resolve and handoff posts.",
    )
    page_via: list[str] = Field(
        default_factory=list, description="Notifiers that page a person (default: all)."
    )
    ack_timeout: Duration = Field(
        default=timedelta(minutes=30),
        description="Acknowledged but not resolved this long: paging starts again. 0s: never.",
    )
    monitor_health: str | None = Field(
        default=None,
        description="Policy for monitor-health incidents (checks blind: rate limited, "
        "refused, out of resources). Default: a post to `channel` (none: to every notifier "
        "that pages nobody), nobody paged.",
    )

    @model_validator(mode="after")
    def _policies_exist(self) -> EscalationConfig:
        known = ", ".join(sorted(self.policies)) or "none"
        for severity, name in self.severities.items():
            if name not in self.policies:
                raise ValueError(
                    f"severities.{severity}: no policy named {name!r} (policies: {known})"
                )
        if self.monitor_health is not None and self.monitor_health not in self.policies:
            raise ValueError(
                f"monitor_health: no policy named {self.monitor_health!r} (policies: {known})"
            )
        return self

    def health_policy(self, notifiers: Mapping[str, str]) -> tuple[str, Policy] | None:
        """The policy of monitor-health incidents: `monitor_health`, or else a post to the
        channel. Without a channel, a post to every notifier (name → type) that pages
        nobody: not in `page_via`, not PagerDuty. None with nowhere to post."""
        if self.monitor_health is not None:
            return self.monitor_health, self.policies[self.monitor_health]
        if self.channel:
            targets = [self.channel]
        else:
            targets = [
                name
                for name, kind in notifiers.items()
                if kind != "pagerduty" and name not in self.page_via
            ]
        if not targets:
            return None
        return "monitor_health", Policy(steps=[Step(post=t) for t in targets])

    def policy_for(self, severity: Severity) -> tuple[str, Policy] | None:
        name = self.severities.get(severity.value, "default")
        policy = self.policies.get(name)
        return (name, policy) if policy is not None else None


@dataclass(frozen=True, slots=True)
class Action:
    """A step that is due: post to a channel or page a target."""

    kind: Literal["post", "page"]
    target: (
        str | tuple[str, ...]
    )  # notifier name (post); primary/secondary/rotation or names (page)
    pass_no: int
    step: int
    due_at: datetime

    @property
    def key(self) -> str:
        """Identifies this action within its incident, across restarts."""
        return f"p{self.pass_no}s{self.step}"


def freeze(name: str, policy: Policy) -> str:
    """The policy as the escalation stores it."""
    steps: list[dict[str, object]] = []
    for s in policy.steps:
        if s.wait is not None:
            steps.append({"wait": format_duration(s.wait)})
        elif s.post is not None:
            steps.append({"post": s.post})
        else:
            steps.append({"page": s.page})
    return json.dumps(
        {"name": name, "steps": steps, "repeat": policy.repeat, "repeat_from": policy.repeat_from}
    )


def thaw(frozen: str) -> tuple[str, Policy]:
    doc = json.loads(frozen)
    return doc["name"], Policy.model_validate(
        {"steps": doc["steps"], "repeat": doc["repeat"], "repeat_from": doc["repeat_from"]}
    )


def due_actions(
    state: EscalationState, policy: Policy, now: datetime
) -> tuple[list[Action], EscalationState | None]:
    """Every action due by `now`, and the escalation after them (None: the policy ran out).

    Pure: the same state, policy and time give the same actions, which is what makes a
    step re-run after a crash produce the same idempotency keys.
    """
    actions: list[Action] = []
    step, pass_no, at = state.step, state.pass_no, state.next_at
    while at <= now:
        if step >= len(policy.steps):
            if pass_no >= policy.repeat:
                return actions, None
            step, pass_no = policy.repeat_from, pass_no + 1
            continue
        current = policy.steps[step]
        if current.wait is not None:
            at += current.wait
        elif current.post is not None:
            actions.append(Action("post", current.post, pass_no, step, at))
        else:
            target = current.page if isinstance(current.page, str) else tuple(current.page or ())
            actions.append(Action("page", target, pass_no, step, at))
        step += 1
    return actions, replace(state, step=step, pass_no=pass_no, next_at=at)
