"""`kind: version_sync`: several places that publish a release report the same version.

A release reaches npm packages, the marketplace and GitHub one after another over
minutes, so a difference is only a failure once a source has lagged for longer than
`grace`. The result names the lagging source, its version, the leader, and since when.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from monitor.checks.base import AssetFacts, Check, CheckContext, shared_asset_facts
from monitor.checks.marketplace import (
    DEFAULT_GALLERY,
    MARKETPLACE_ID,
    query_marketplace,
)
from monitor.checks.npm import DEFAULT_REGISTRY, PACKAGE_PATTERN, fetch_packument, resolve_tag
from monitor.checks.upstream import dig, fetch_json
from monitor.core.configtypes import CheckConfigBase, Duration, StrictModel, format_duration
from monitor.core.model import FailureKind, Observation

__all__ = ["SyncSource", "VersionSyncCheck", "VersionSyncCheckConfig", "version_key"]

GITHUB_API = "https://api.github.com"
_KINDS = ("npm", "github_release", "vscode_marketplace")


class SyncSource(StrictModel):
    """One place a version is published: exactly one of `npm`, `github_release` or
    `vscode_marketplace`."""

    npm: str | None = Field(default=None, pattern=PACKAGE_PATTERN)
    tag: str = "latest"
    registry: str = Field(default=DEFAULT_REGISTRY, pattern=r"^https?://\S+$")
    github_release: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/repo"
    )
    api_url: str = Field(default=GITHUB_API, pattern=r"^https?://\S+$")
    token: SecretStr | None = None
    vscode_marketplace: str | None = Field(
        default=None, pattern=MARKETPLACE_ID, description="publisher.name"
    )
    gallery_url: str = Field(default=DEFAULT_GALLERY, pattern=r"^https?://\S+$")

    @model_validator(mode="after")
    def _exactly_one(self) -> SyncSource:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_KINDS)} (got {len(given)})")
        return self

    @property
    def label(self) -> str:
        if self.npm is not None:
            return f"npm:{self.npm}" + (f"@{self.tag}" if self.tag != "latest" else "")
        if self.github_release is not None:
            return f"github:{self.github_release}"
        return f"marketplace:{self.vscode_marketplace}"


class VersionSyncCheckConfig(CheckConfigBase):
    """Sources that must agree, and how long a release may take to reach all of them."""

    kind: Literal["version_sync"]
    sources: list[SyncSource] = Field(min_length=2)
    grace: Duration = Field(default=timedelta(hours=1), description="Time to converge.")


_NUM = re.compile(r"\d+")


def version_key(version: str) -> tuple[Any, ...]:
    """Orders versions the semver way: numbers numerically, a pre-release below its release."""
    core, _, pre = version.removeprefix("v").partition("-")
    numbers = tuple(int(n) for n in _NUM.findall(core.split("+")[0]))
    return (numbers, 0 if pre else 1, pre)


class VersionSyncCheck(Check[VersionSyncCheckConfig]):
    """Reads every source each run; remembers since when each one has lagged."""

    Config = VersionSyncCheckConfig
    upstream_label = "registry"

    @classmethod
    def asset_facts(cls, details: Mapping[str, Any]) -> AssetFacts | None:
        return shared_asset_facts(details)  # the leading version

    def __init__(self, config: VersionSyncCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        self._fetchers: list[tuple[str, Callable[[], Awaitable[str | Observation]]]] = [
            (source.label, self._fetcher(source)) for source in config.sources
        ]
        # label → (version it is stuck at, when it was first seen behind the leader)
        self._lagging: dict[str, tuple[str, datetime]] = {}

    def _fetcher(self, source: SyncSource) -> Callable[[], Awaitable[str | Observation]]:
        if source.npm is not None:
            npm = source.npm

            async def from_npm() -> str | Observation:
                reply = await fetch_packument(
                    self.ctx.session, source.registry, npm, token=source.token
                )
                if isinstance(reply, Observation):
                    return reply
                resolved = resolve_tag(reply.doc, npm, source.tag)
                return resolved if isinstance(resolved, Observation) else resolved.version

            return from_npm
        if source.github_release is not None:
            repo = source.github_release

            async def from_github() -> str | Observation:
                return await _latest_release(self.ctx, source.api_url, repo, source.token)

            return from_github
        extension = source.vscode_marketplace or ""  # set: SyncSource has exactly one kind

        async def from_marketplace() -> str | Observation:
            release = await query_marketplace(self.ctx.session, source.gallery_url, extension)
            return release if isinstance(release, Observation) else release.version

        return from_marketplace

    async def run(self) -> Observation:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                answers = await asyncio.gather(*(fetch() for _, fetch in self._fetchers))
        except TimeoutError:
            return Observation.down(
                FailureKind.UNAVAILABLE,
                f"sources did not all answer within {self.config.timeout_s:g}s",
            )
        versions: dict[str, str] = {}
        for (label, _), answer in zip(self._fetchers, answers, strict=True):
            if isinstance(answer, Observation):
                return Observation(
                    answer.outcome, answer.failure, f"{label}: {answer.message}",
                    {**answer.details, "source": label},
                )  # fmt: skip
            versions[label] = answer
        return self._judge(versions, self.ctx.clock.now())

    def _judge(self, versions: dict[str, str], now: datetime) -> Observation:
        leader_label, leader = max(versions.items(), key=lambda item: version_key(item[1]))
        behind = {
            label: v for label, v in versions.items() if version_key(v) != version_key(leader)
        }
        for label in list(self._lagging):
            if label not in behind or self._lagging[label][0] != behind[label]:
                del self._lagging[label]  # caught up, or moved: a new lag starts now
        for label, version in behind.items():
            self._lagging.setdefault(label, (version, now))
        details: dict[str, Any] = {"versions": versions, "version": leader}
        if not behind:
            return Observation.up(f"all {len(versions)} sources at {leader}", **details)
        worst_label = min(behind, key=lambda label: self._lagging[label][1])
        since = self._lagging[worst_label][1]
        lag = now - since
        details["lagging"] = {
            label: {"version": v, "since": self._lagging[label][1]} for label, v in behind.items()
        }
        message = (
            f"{worst_label} at {behind[worst_label]} lags {leader} ({leader_label}) "
            f"since {since:%Y-%m-%d %H:%M} UTC"
        )
        if len(behind) > 1:
            message += f"; {len(behind) - 1} more source(s) behind"
        if lag <= self.config.grace:
            return Observation.up(
                f"converging: {message} (grace {format_duration(self.config.grace)})", **details
            )
        return Observation.down(
            FailureKind.VERSION_SKEW,
            f"{message}, over grace {format_duration(self.config.grace)}",
            **details,
        )


async def _latest_release(
    ctx: CheckContext, api_url: str, repo: str, token: SecretStr | None
) -> str | Observation:
    """The newest release's tag, without a leading `v`.

    One small GET per run straight from the event loop: the GitHub client library (used by
    the github_actions kind) would only add a thread hop for it.
    """
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    secret = token.get_secret_value() if token is not None else ""
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    url = f"{api_url.rstrip('/')}/repos/{repo}/releases/latest"
    reply = await fetch_json(
        ctx.session, url, what="GitHub API", headers=headers, accept_status=(404,)
    )
    if isinstance(reply, Observation):
        return reply
    if reply.status == 404:
        return Observation.down(FailureKind.NOT_FOUND, f"{repo} has no published release (404)")
    tag = dig(reply.doc, "tag_name", kind=str)
    if not tag:
        return Observation.down(FailureKind.SCHEMA, f"{repo}: latest release has no tag_name")
    return tag.removeprefix("v")
