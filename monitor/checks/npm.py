"""`kind: npm`: a package can be installed from its registry.

The package document (the abbreviated one first; the full one when `max_age` needs
publish times) must resolve the dist-tag to a version that is present and not
deprecated, and that version's tarball, taken from `dist.tarball`, must download.
Failure kinds tell *cannot install* (not_found, tag_missing, tarball, integrity) apart
from deprecated, stale and an unavailable registry, so rules can page on the first only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from pydantic import Field, SecretStr
from yarl import URL

from monitor.checks.base import (
    AssetFacts,
    Check,
    CheckContext,
    LastGood,
    classify_exception,
    pick,
    shared_asset_facts,
    when,
)
from monitor.checks.upstream import JsonReply, dig, fetch_json, parse_time
from monitor.core.configtypes import CheckConfigBase, PositiveDuration, format_duration
from monitor.core.model import FailureKind, Observation

__all__ = [
    "DEFAULT_REGISTRY",
    "NpmCheck",
    "NpmCheckConfig",
    "NpmVersion",
    "fetch_packument",
    "packument_url",
    "resolve_tag",
]

DEFAULT_REGISTRY = "https://registry.npmjs.org"
PACKAGE_PATTERN = r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$"
# What the npm client sends: the abbreviated document if the registry has it.
ACCEPT_ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
ACCEPT_FULL = "application/json"


class NpmCheckConfig(CheckConfigBase):
    """An npm package and the dist-tag users install."""

    kind: Literal["npm"]
    package: str = Field(pattern=PACKAGE_PATTERN, description="e.g. winglang or @winglang/sdk")
    tag: str = Field(default="latest", min_length=1)
    registry: str = Field(default=DEFAULT_REGISTRY, pattern=r"^https?://\S+$")
    token: SecretStr | None = Field(default=None, description="Bearer token, e.g. ${NPM_TOKEN}")
    verify_integrity: bool = Field(
        default=False, description="Download the whole tarball and check integrity/shasum."
    )
    max_age: PositiveDuration | None = Field(
        default=None, description="Degraded (stale) when the tagged version is older."
    )


@dataclass(frozen=True, slots=True)
class NpmVersion:
    """What a dist-tag resolves to."""

    package: str
    tag: str
    version: str
    tarball: str
    integrity: str | None
    shasum: str | None
    deprecated: str | None
    published_at: datetime | None


def packument_url(registry: str, package: str) -> URL:
    """`@scope/name` is requested as `@scope%2fname`: the slash is encoded, the @ is not."""
    return URL(f"{registry.rstrip('/')}/{quote(package, safe='@')}", encoded=True)


def _auth(token: SecretStr | None) -> dict[str, str]:
    secret = token.get_secret_value() if token is not None else ""
    return {"Authorization": f"Bearer {secret}"} if secret else {}


async def fetch_packument(
    session: aiohttp.ClientSession,
    registry: str,
    package: str,
    *,
    token: SecretStr | None = None,
    full: bool = False,
) -> JsonReply | Observation:
    """The package document, or why there is none (404 is NOT_FOUND: cannot install)."""
    headers = {"Accept": ACCEPT_FULL if full else ACCEPT_ABBREVIATED, **_auth(token)}
    reply = await fetch_json(
        session, str(packument_url(registry, package)), what="registry", headers=headers,
        accept_status=(404,),
    )  # fmt: skip
    if isinstance(reply, JsonReply) and reply.status == 404:
        return Observation.down(
            FailureKind.NOT_FOUND, f"{package} not found on the registry (404)", package=package
        )
    return reply


def resolve_tag(doc: Any, package: str, tag: str) -> NpmVersion | Observation:
    """Resolves `dist-tags[tag]` in a package document (abbreviated or full). Pure.

    Tolerates what real registries leave out (`time`, `created`, `modified`,
    `fileCount`); anything it needs but cannot read is a SCHEMA failure.
    """
    if not isinstance(doc, dict):
        return Observation.down(FailureKind.SCHEMA, f"{package}: package document is not an object")
    unpublished = dig(doc, "time", "unpublished", kind=dict)
    if unpublished is not None and not isinstance(doc.get("versions"), dict):
        return Observation.down(FailureKind.NOT_FOUND, f"{package} was unpublished")
    tags = dig(doc, "dist-tags", kind=dict)
    versions = dig(doc, "versions", kind=dict)
    if tags is None or versions is None:
        missing = "dist-tags" if tags is None else "versions"
        return Observation.down(
            FailureKind.SCHEMA, f"{package}: package document has no {missing} object"
        )
    version = tags.get(tag)
    if not isinstance(version, str):
        known = ", ".join(sorted(k for k in tags if isinstance(k, str))) or "none"
        return Observation.down(
            FailureKind.TAG_MISSING,
            f"{package}: dist-tag {tag!r} is missing (tags: {known})",
            tag=tag,
        )
    meta = versions.get(version)
    if not isinstance(meta, dict):
        return Observation.down(
            FailureKind.TAG_MISSING,
            f"{package}: dist-tags.{tag} points at {version}, which is not in versions",
            tag=tag, version=version,
        )  # fmt: skip
    tarball = dig(meta, "dist", "tarball", kind=str)
    if not tarball or not tarball.startswith(("http://", "https://")):
        return Observation.down(
            FailureKind.SCHEMA, f"{package}@{version}: no usable dist.tarball URL"
        )
    deprecated = meta.get("deprecated")
    return NpmVersion(
        package=package,
        tag=tag,
        version=version,
        tarball=tarball,
        integrity=dig(meta, "dist", "integrity", kind=str),
        shasum=dig(meta, "dist", "shasum", kind=str),
        deprecated=deprecated if isinstance(deprecated, str) and deprecated else None,
        published_at=parse_time(dig(doc, "time", version, kind=str)),
    )


class NpmCheck(Check[NpmCheckConfig]):
    """Resolves the tag and proves its tarball downloads, once per run."""

    Config = NpmCheckConfig
    upstream_label = "npm registry"

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        return pick(details, "package", "tag", "version")

    @classmethod
    def advice(cls, good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
        """The version the tag pointed at when last healthy, and the `npm dist-tag`
        command that moves it back (none when it still points there)."""
        if good is None or not good.values.get("version"):
            return None
        v = good.values
        package, tag, version = str(v.get("package", "")), str(v.get("tag", "latest")), v["version"]
        now = failing.get("version")
        block: dict[str, Any] = {**good.to_json(), "url": None}
        where = f"{package}@{tag} pointed at {version} when last healthy ({when(good.at)})"
        if now == version:
            block["command"] = None
            block["text"] = f"{where} and still does: moving the tag back will not help"
            return block
        command = f"npm dist-tag add {shlex.quote(f'{package}@{version}')} {shlex.quote(tag)}"
        block["command"] = command
        now_text = f"; it now points at {now}" if now else ""
        block["text"] = f"{where}{now_text}; to revert: {command}"
        return block

    @classmethod
    def asset_facts(cls, details: Mapping[str, Any]) -> AssetFacts | None:
        return shared_asset_facts(details)

    def __init__(self, config: NpmCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        self._registry_host = URL(config.registry).host
        self._auth = _auth(config.token)

    @property
    def target(self) -> str:
        return self._registry_host or self.config.registry

    async def run(self) -> Observation:
        stage = "registry"
        try:
            async with asyncio.timeout(self.config.timeout_s):
                resolved = await self._resolve()
                if isinstance(resolved, Observation):
                    return resolved
                stage = "tarball"
                if self.config.verify_integrity:
                    problem = await self._verify(resolved)
                else:
                    problem = await self._reachable(resolved)
        except TimeoutError:
            seconds = f"{self.config.timeout_s:g}s"
            if stage == "registry":
                return Observation.down(
                    FailureKind.UNAVAILABLE, f"registry did not answer within {seconds}"
                )
            return Observation.down(
                FailureKind.TARBALL, f"tarball download did not finish within {seconds}"
            )
        return problem or self._judge(resolved)

    async def _resolve(self) -> NpmVersion | Observation:
        config = self.config
        reply = await fetch_packument(
            self.ctx.session, config.registry, config.package, token=config.token,
            full=config.max_age is not None,
        )  # fmt: skip
        if isinstance(reply, Observation):
            return reply
        return resolve_tag(reply.doc, config.package, config.tag)

    def _headers(self, url: str) -> dict[str, str]:
        # Credentials go only to the registry itself, never to another tarball host.
        return self._auth if URL(url).host == self._registry_host else {}

    async def _reachable(self, v: NpmVersion) -> Observation | None:
        """HEAD the tarball; where HEAD is refused, a one-byte ranged GET."""
        session, headers = self.ctx.session, self._headers(v.tarball)
        try:
            async with session.head(v.tarball, headers=headers, allow_redirects=True) as resp:
                status = resp.status
            if status in (404, 410) or 200 <= status < 300:
                return None if status < 300 else _tarball_status(v, status, "HEAD")
            ranged = {**headers, "Range": "bytes=0-0"}
            async with session.get(v.tarball, headers=ranged, allow_redirects=True) as resp:
                status = resp.status
            return None if status in (200, 206) else _tarball_status(v, status, "GET")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _tarball_error(v, exc)

    async def _verify(self, v: NpmVersion) -> Observation | None:
        """Downloads the tarball, hashing as it streams (never held in memory)."""
        algo, expected = _expected_digest(v)
        if algo is None:
            return Observation.down(
                FailureKind.INTEGRITY, f"{v.package}@{v.version}: no integrity or shasum to verify"
            )
        digest = hashlib.new(algo)
        size = 0
        try:
            async with self.ctx.session.get(v.tarball, headers=self._headers(v.tarball)) as resp:
                if resp.status != 200:
                    return _tarball_status(v, resp.status, "GET")
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _tarball_error(v, exc)
        got = digest.hexdigest() if algo == "sha1" else base64.b64encode(digest.digest()).decode()
        if got != expected:
            return Observation.down(
                FailureKind.INTEGRITY,
                f"{v.package}@{v.version}: tarball {algo} is {got[:16]}…, expected {expected[:16]}… "
                f"({size:,} bytes downloaded)",
                tarball=v.tarball,
            )  # fmt: skip
        return None

    def _judge(self, v: NpmVersion) -> Observation:
        details: dict[str, Any] = {"package": v.package, "tag": v.tag, "version": v.version}
        details["tarball"] = v.tarball
        if v.published_at is not None:
            details["updated_at"] = v.published_at
        where = f"{v.package}@{v.tag} → {v.version}"
        if v.deprecated:
            return Observation.down(
                FailureKind.DEPRECATED, f"{where} is deprecated: {v.deprecated}", **details
            )
        max_age = self.config.max_age
        if max_age is not None:
            if v.published_at is None:
                return Observation.up(f"{where}, tarball ok (publish time unknown)", **details)
            age = self.ctx.clock.now() - v.published_at
            if age > max_age:
                return Observation.degraded(
                    FailureKind.STALE,
                    f"{where} was published {v.published_at:%Y-%m-%d %H:%M}Z, over max_age "
                    f"{format_duration(max_age)}",
                    age_s=int(age.total_seconds()),
                    **details,
                )  # fmt: skip
        checked = "verified" if self.config.verify_integrity else "ok"
        return Observation.up(f"{where}, tarball {checked}", **details)


def _expected_digest(v: NpmVersion) -> tuple[str | None, str]:
    if v.integrity and v.integrity.startswith("sha512-"):
        return "sha512", v.integrity.removeprefix("sha512-")
    if v.shasum:
        return "sha1", v.shasum.lower()
    return None, ""


def _tarball_status(v: NpmVersion, status: int, method: str) -> Observation:
    return Observation.down(
        FailureKind.TARBALL,
        f"{v.package}@{v.version}: tarball {method} answered {status} ({v.tarball})",
        tarball=v.tarball, status=status,
    )  # fmt: skip


def _tarball_error(v: NpmVersion, exc: BaseException) -> Observation:
    _, message = classify_exception(exc)
    return Observation.down(
        FailureKind.TARBALL,
        f"{v.package}@{v.version}: tarball unavailable: {message}",
        tarball=v.tarball,
    )
