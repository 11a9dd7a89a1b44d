"""`kind: vscode_marketplace` and `kind: openvsx`: a VS Code extension is listed and installable.

Both read the latest version, its date and the install count into the shared `version`,
`updated_at` and `installs` details. The gallery query does not exclude unpublished
extensions, so an unpublished one is reported as such rather than as missing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from pydantic import Field
from yarl import URL

from monitor.checks.base import (
    AssetFacts,
    Check,
    CheckContext,
    LastGood,
    pick,
    shared_asset_facts,
    when,
)
from monitor.checks.upstream import JsonReply, dig, fetch_json, parse_time
from monitor.core.configtypes import CheckConfigBase, PositiveDuration, format_duration
from monitor.core.model import FailureKind, Observation

__all__ = [
    "DEFAULT_GALLERY",
    "DEFAULT_OPENVSX",
    "QUERY_FLAGS",
    "ExtensionRelease",
    "OpenVsxCheck",
    "OpenVsxCheckConfig",
    "VscodeMarketplaceCheck",
    "VscodeMarketplaceCheckConfig",
    "extension_query",
    "judge_release",
    "parse_extension_query",
    "parse_openvsx",
    "query_marketplace",
]

DEFAULT_GALLERY = "https://marketplace.visualstudio.com/_apis/public/gallery"
DEFAULT_OPENVSX = "https://open-vsx.org"
# vsce's rule for publisher and extension names: letters, digits and hyphens.
MARKETPLACE_ID = r"^[A-Za-z0-9][A-Za-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9-]*$"
# Open VSX allows a few more characters in both parts (its ExtensionValidator).
OPENVSX_ID = r"^[A-Za-z0-9_+$~-]+\.[A-Za-z0-9_+$~-]+$"

# IncludeVersions | IncludeCategoryAndTags | IncludeStatistics | IncludeLatestVersionOnly:
# enough for version, date and installs, and one version instead of the whole history.
QUERY_FLAGS = 0x1 | 0x4 | 0x100 | 0x200
FILTER_NAME = 7  # ExtensionQueryFilterType.Name: `publisher.extension`
FILTER_TARGET = 8  # ExtensionQueryFilterType.InstallationTarget
VSCODE_TARGET = "Microsoft.VisualStudio.Code"
GALLERY_HEADERS = {
    "Accept": "application/json;api-version=3.0-preview.1",
    "Content-Type": "application/json",
}
_URL_PATTERN = r"^https?://\S+$"


class VscodeMarketplaceCheckConfig(CheckConfigBase):
    """An extension on the Visual Studio Marketplace."""

    kind: Literal["vscode_marketplace"]
    extension: str = Field(pattern=MARKETPLACE_ID, description="publisher.name")
    gallery_url: str = Field(default=DEFAULT_GALLERY, pattern=_URL_PATTERN)
    max_age: PositiveDuration | None = Field(
        default=None, description="Degraded (stale) when the latest version is older."
    )


class OpenVsxCheckConfig(CheckConfigBase):
    """An extension on Open VSX (or another registry running its server)."""

    kind: Literal["openvsx"]
    extension: str = Field(pattern=OPENVSX_ID, description="namespace.name")
    api_url: str = Field(default=DEFAULT_OPENVSX, pattern=_URL_PATTERN)
    max_age: PositiveDuration | None = Field(
        default=None, description="Degraded (stale) when the latest version is older."
    )


@dataclass(frozen=True, slots=True)
class ExtensionRelease:
    """The latest version of an extension, as one gallery lists it."""

    extension: str  # as the gallery spells it
    version: str
    updated_at: datetime
    installs: int | float | None
    deprecated: str | None = None  # why, when the gallery marks it deprecated

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "extension": self.extension,
            "version": self.version,
            "updated_at": self.updated_at,
        }
        if self.installs is not None:
            details["installs"] = self.installs
        return details


# --- Visual Studio Marketplace ---------------------------------------------------------


def extension_query(extension: str) -> dict[str, Any]:
    """The `extensionquery` body for one extension, as VS Code asks for it.

    Without VS Code's exclude-unpublished criterion (filterType 12, 4096): an unpublished
    extension must come back, flagged, so that it is not mistaken for a missing one.
    """
    criteria = [
        {"filterType": FILTER_NAME, "value": extension},
        {"filterType": FILTER_TARGET, "value": VSCODE_TARGET},
    ]
    return {
        "filters": [
            {"criteria": criteria, "pageNumber": 1, "pageSize": 1, "sortBy": 0, "sortOrder": 0}
        ],
        "assetTypes": [],
        "flags": QUERY_FLAGS,
    }


def parse_extension_query(doc: Any, extension: str) -> ExtensionRelease | Observation:
    """Reads an `extensionquery` answer for `extension`. Pure; never raises.

    Not found and unpublished are their own kinds; an error body keeps its message;
    anything else unreadable is a SCHEMA failure naming the field.
    """
    if (error := _gallery_error(doc)) is not None:
        return Observation.down(FailureKind.PROTOCOL, f"marketplace error: {error}")
    if not isinstance(doc, dict):
        return _schema("marketplace answer is not a JSON object")
    extensions = dig(doc, "results", 0, "extensions", kind=list)
    if extensions is None:
        return _schema("marketplace answer has no results[0].extensions list")
    if not extensions:
        return Observation.down(
            FailureKind.NOT_FOUND, f"{extension} not found on the marketplace", extension=extension
        )
    ext = extensions[0]
    publisher = dig(ext, "publisher", "publisherName", kind=str)
    name = dig(ext, "extensionName", kind=str)
    if publisher is None or name is None:
        return _schema("marketplace extension has no publisher.publisherName or extensionName")
    found = f"{publisher}.{name}"
    # The gallery matches loosely; like vsce, accept only the exact id (any case).
    if found.lower() != extension.lower():
        return Observation.down(
            FailureKind.NOT_FOUND,
            f"{extension} not found on the marketplace (it answered with {found})",
            extension=extension,
        )
    return _read_extension(ext, found)


def _read_extension(ext: dict[str, Any], found: str) -> ExtensionRelease | Observation:
    flags = dig(ext, "flags", kind=str)
    if flags is None:
        return _schema(f"marketplace answer for {found} has no flags string")
    if "unpublished" in {word.strip().lower() for word in flags.split(",")}:
        return Observation.down(
            FailureKind.UNPUBLISHED,
            f"{found} is unpublished on the marketplace (flags: {flags})",
            extension=found,
        )
    version = dig(ext, "versions", 0, "version", kind=str)
    if not version:
        return _schema(f"marketplace answer for {found} has no versions[0].version string")
    stamp = dig(ext, "versions", 0, "lastUpdated", kind=object) or ext.get("lastUpdated")
    updated_at = parse_time(stamp)
    if updated_at is None:
        return _schema(f"marketplace answer for {found} has no lastUpdated date (got {stamp!r})")
    installs = _install_count(ext, found)
    if isinstance(installs, Observation):
        return installs
    return ExtensionRelease(found, version, updated_at, installs)


def _install_count(ext: dict[str, Any], found: str) -> int | float | Observation | None:
    """`statistics[statisticName == "install"].value`; None when the gallery has no entry."""
    stats = ext.get("statistics")
    if not isinstance(stats, list):
        return _schema(f"marketplace answer for {found} has no statistics list")
    for stat in stats:
        if dig(stat, "statisticName", kind=str) != "install":
            continue
        value = dig(stat, "value", kind=float)
        if value is None or not math.isfinite(value) or value < 0:
            return _schema(
                f"marketplace answer for {found}: install statistic is not a count "
                f"({stat.get('value')!r})"
            )
        return int(value) if value.is_integer() else value
    return None


def _gallery_error(doc: Any) -> str | None:
    """The message of an Azure DevOps error body (`errorCode`, `message`), if it is one."""
    if not isinstance(doc, dict) or "results" in doc:
        return None
    if "errorCode" not in doc and "message" not in doc:
        return None
    message = doc.get("message")
    text = message if isinstance(message, str) and message else "no message"
    type_key = doc.get("typeKey")
    return f"{text} ({type_key})" if isinstance(type_key, str) and type_key else text


async def query_marketplace(
    session: aiohttp.ClientSession, gallery_url: str, extension: str
) -> ExtensionRelease | Observation:
    """Asks the gallery for one extension's latest release (no timeout of its own)."""
    query_url = str(URL(gallery_url.rstrip("/")) / "extensionquery")
    reply = await fetch_json(
        session, query_url, what="marketplace", method="POST",
        headers=GALLERY_HEADERS, body=extension_query(extension), accept_status=(400,),
    )  # fmt: skip
    if isinstance(reply, Observation):
        return reply
    if reply.status == 400:
        # 400 carries the reason in an error body; keep it.
        error = _gallery_error(reply.doc) or "no error message"
        return Observation.down(
            FailureKind.PROTOCOL, f"marketplace refused the query ({reply.status}): {error}"
        )
    return parse_extension_query(reply.doc, extension)


class _Listing:
    """What both extension listings know of their asset: the version listed is the last
    known good, and the same asset facts."""

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        return _capture(details)

    @classmethod
    def good_text(cls, good: LastGood, failing: Mapping[str, Any]) -> str:
        return _good_text(good, failing)

    @classmethod
    def asset_facts(cls, details: Mapping[str, Any]) -> AssetFacts | None:
        return shared_asset_facts(details)


class VscodeMarketplaceCheck(_Listing, Check[VscodeMarketplaceCheckConfig]):
    """Queries the gallery for the extension once per run."""

    Config = VscodeMarketplaceCheckConfig
    upstream_label = "VS Code Marketplace"

    def __init__(self, config: VscodeMarketplaceCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        gallery = URL(config.gallery_url.rstrip("/"))
        self._item_url = str(
            gallery.origin().with_path("/items").with_query(itemName=config.extension)
        )
        self._host = gallery.host

    @property
    def target(self) -> str:
        return self._host or self.config.gallery_url

    async def run(self) -> Observation:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                parsed = await query_marketplace(
                    self.ctx.session, self.config.gallery_url, self.config.extension
                )
        except TimeoutError:
            return _timed_out("marketplace", self.config.timeout_s)
        extra = {"url": self._item_url}
        if isinstance(parsed, Observation):
            return _with(parsed, extra) if parsed.failure is FailureKind.UNPUBLISHED else parsed
        return judge_release(
            parsed, "on the marketplace", self.config.max_age, self.ctx.clock.now(), extra
        )


# --- Open VSX --------------------------------------------------------------------------


def parse_openvsx(doc: Any, extension: str) -> ExtensionRelease | Observation:
    """Reads an Open VSX `ExtensionJson` (`GET /api/{namespace}/{name}`). Pure; never raises."""
    if not isinstance(doc, dict):
        return _schema("Open VSX answer is not a JSON object")
    error = doc.get("error")
    if isinstance(error, str) and error:
        return Observation.down(FailureKind.PROTOCOL, f"Open VSX error: {error}")
    namespace, name = dig(doc, "namespace", kind=str), dig(doc, "name", kind=str)
    if namespace is None or name is None:
        return _schema("Open VSX answer has no namespace or name string")
    found = f"{namespace}.{name}"
    if found.lower() != extension.lower():
        return Observation.down(
            FailureKind.NOT_FOUND,
            f"{extension} not found on Open VSX (it answered with {found})",
            extension=extension,
        )
    version = dig(doc, "version", kind=str)
    if not version:
        return _schema(f"Open VSX answer for {found} has no version string")
    updated_at = parse_time(doc.get("timestamp"))
    if updated_at is None:
        return _schema(
            f"Open VSX answer for {found} has no timestamp date (got {doc.get('timestamp')!r})"
        )
    # downloadCount is omitted when null (the server drops null fields).
    downloads = doc.get("downloadCount")
    if downloads is not None and (
        isinstance(downloads, bool) or not isinstance(downloads, int) or downloads < 0
    ):
        return _schema(f"Open VSX answer for {found}: downloadCount is not a count ({downloads!r})")
    deprecated = doc.get("deprecated", False)
    if not isinstance(deprecated, bool):
        return _schema(f"Open VSX answer for {found}: deprecated is not a boolean ({deprecated!r})")
    reason = _replacement_note(doc) if deprecated else None
    return ExtensionRelease(found, version, updated_at, downloads, reason)


def _replacement_note(doc: dict[str, Any]) -> str:
    replacement = dig(doc, "replacement", "displayName", kind=str) or dig(
        doc, "replacement", "url", kind=str
    )
    return f"use {replacement} instead" if replacement else "no replacement named"


class OpenVsxCheck(_Listing, Check[OpenVsxCheckConfig]):
    """Loads the extension's latest metadata from the Open VSX API once per run."""

    Config = OpenVsxCheckConfig
    upstream_label = "Open VSX"

    def __init__(self, config: OpenVsxCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        namespace, name = config.extension.split(".", 1)
        base = config.api_url.rstrip("/")
        self._url = f"{base}/api/{quote(namespace, safe='')}/{quote(name, safe='')}"
        self._page = f"{base}/extension/{quote(namespace, safe='')}/{quote(name, safe='')}"
        self._host = URL(base).host

    @property
    def target(self) -> str:
        return self._host or self.config.api_url

    async def run(self) -> Observation:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                reply = await fetch_json(
                    self.ctx.session, self._url, what="Open VSX",
                    headers={"Accept": "application/json"}, accept_status=(404,),
                )  # fmt: skip
        except TimeoutError:
            return _timed_out("Open VSX", self.config.timeout_s)
        if isinstance(reply, Observation):
            return reply
        if reply.status == 404:
            return _not_on_openvsx(self.config.extension, reply)
        parsed = parse_openvsx(reply.doc, self.config.extension)
        if isinstance(parsed, Observation):
            return parsed
        extra = {"url": self._page}
        download = dig(reply.doc, "files", "download", kind=str)
        if download:
            extra["download"] = download
        return judge_release(
            parsed, "on Open VSX", self.config.max_age, self.ctx.clock.now(), extra
        )


def _not_on_openvsx(extension: str, reply: JsonReply) -> Observation:
    # The server says "Extension not found: ns.name"; other 404 bodies (a wrong api_url
    # behind a proxy) are named, so a misconfiguration does not pass for "not published".
    error = dig(reply.doc, "error", kind=str)
    message = f"{extension} is not published on Open VSX (404)"
    if error and not error.startswith("Extension not found"):
        message += f": {error}"
    return Observation.down(FailureKind.NOT_FOUND, message, extension=extension, status=404)


# --- Shared ----------------------------------------------------------------------------


def judge_release(
    release: ExtensionRelease,
    where: str,
    max_age: timedelta | None,
    now: datetime,
    extra: dict[str, Any],
) -> Observation:
    """Up, or degraded when the gallery marks the extension deprecated or it is too old."""
    details = release.details() | extra
    where = f"{release.extension} {release.version} {where}"
    if release.deprecated is not None:
        return Observation.degraded(
            FailureKind.DEPRECATED, f"{where} is deprecated ({release.deprecated})", **details
        )
    if max_age is not None:
        age = now - release.updated_at
        if age > max_age:
            return Observation.degraded(
                FailureKind.STALE,
                f"{where} was updated {release.updated_at:%Y-%m-%d %H:%M}Z, over max_age "
                f"{format_duration(max_age)}",
                age_s=int(age.total_seconds()),
                **details,
            )
    return Observation.up(
        f"{where}, updated {release.updated_at:%Y-%m-%d}{_installs(release)}", **details
    )


def _installs(release: ExtensionRelease) -> str:
    return "" if release.installs is None else f", {release.installs:,} installs"


def _schema(message: str) -> Observation:
    return Observation.down(FailureKind.SCHEMA, message)


def _with(obs: Observation, extra: dict[str, Any]) -> Observation:
    return Observation(obs.outcome, obs.failure, obs.message, {**obs.details, **extra})


def _timed_out(what: str, seconds: float) -> Observation:
    return Observation.down(FailureKind.UNAVAILABLE, f"{what} did not answer within {seconds:g}s")


def _capture(details: Mapping[str, Any]) -> dict[str, Any]:
    return pick(details, "extension", "version")


def _good_text(good: LastGood, failing: Mapping[str, Any]) -> str:
    """A listed version cannot be put back: reverting means publishing it again."""
    v = good.values
    if not v.get("version"):
        return f"last passed at {when(good.at)}"
    now = failing.get("version")
    changed = f"; now {now}" if now and now != v["version"] else ""
    return (
        f"version {v['version']} was listed and installable at {when(good.at)}{changed}; "
        f"reverting means publishing {v['version']} again as a new version"
    )
