"""Last known good: what a check looked like when it last passed, and what reverting means.

`capture` picks from a passing result the facts worth remembering for its kind (the
version an npm tag pointed at, the green commit of a workflow, the marketplace version,
an HTTP response's recorded version value). `advice` turns that memory and the failing
result into the block carried by the incident, its pages and the API:

    {"at": "2026-11-22T10:00:00+00:00", "values": {...}, "text": "...",
     "command": "npm dist-tag add winglang@0.85.48 latest", "url": null}

Both are pure. The pipeline keeps the memory (`ResultHandler.last_good`) and persists it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["LastGood", "advice", "capture"]


@dataclass(frozen=True, slots=True)
class LastGood:
    """When a check last passed (`at`) and the facts captured from that run."""

    at: datetime
    values: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "values": dict(self.values)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LastGood:
        values = doc.get("values")
        return cls(
            at=datetime.fromisoformat(str(doc["at"])),
            values=dict(values) if isinstance(values, Mapping) else {},
        )


_MARKETPLACE = ("vscode_marketplace", "openvsx")


def capture(kind: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a passing run worth remembering, by kind (empty: only the time)."""
    if kind == "npm":
        return _pick(details, "package", "tag", "version")
    if kind == "github_actions":
        values = _pick(details, "branch", "run_url")
        if isinstance(details.get("head_sha"), str):
            values["sha"] = details["head_sha"]
        return values
    if kind in _MARKETPLACE:
        return _pick(details, "extension", "version")
    if kind == "http":
        return _pick(details, "status", "final_url", "recorded", "recorded_from")
    return {}


def _pick(details: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: details[k] for k in keys if details.get(k) is not None}


def advice(kind: str, good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
    """What was last good and what reverting to it means, for a failing result's details.

    None when nothing is known: the check never passed while the monitor watched it and
    the upstream names no good state either.
    """
    if kind == "npm":
        return _npm(good, failing)
    if kind == "github_actions":
        return _actions(good, failing)
    if good is None:
        return None
    when = _when(good.at)
    block: dict[str, Any] = {**good.to_json(), "command": None, "url": None}
    v = good.values
    if kind in _MARKETPLACE and v.get("version"):
        now = failing.get("version")
        changed = f"; now {now}" if now and now != v["version"] else ""
        block["text"] = (
            f"version {v['version']} was listed and installable at {when}{changed}; "
            f"reverting means publishing {v['version']} again as a new version"
        )
    elif kind == "http":
        status = f"HTTP {v['status']}" if v.get("status") else "a good response"
        recorded = (
            f", {v['recorded_from']} was {v['recorded']!r}"
            if v.get("recorded") is not None and v.get("recorded_from")
            else ""
        )
        block["text"] = f"last good response: {status} at {when}{recorded}"
    else:
        block["text"] = f"last passed at {when}"
    return block


def _npm(good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
    if good is None or not good.values.get("version"):
        return None
    v = good.values
    package, tag, version = str(v.get("package", "")), str(v.get("tag", "latest")), v["version"]
    now = failing.get("version")
    block: dict[str, Any] = {**good.to_json(), "url": None}
    where = f"{package}@{tag} pointed at {version} when last healthy ({_when(good.at)})"
    if now == version:
        block["command"] = None
        block["text"] = f"{where} and still does: moving the tag back will not help"
        return block
    command = f"npm dist-tag add {shlex.quote(f'{package}@{version}')} {shlex.quote(tag)}"
    block["command"] = command
    now_text = f"; it now points at {now}" if now else ""
    block["text"] = f"{where}{now_text}; to revert: {command}"
    return block


def _actions(good: LastGood | None, failing: Mapping[str, Any]) -> dict[str, Any] | None:
    # The newest green run the API reports beats the memory: it may be newer than what
    # the monitor saw pass (a run that went green and red between two probes).
    sha = failing.get("last_green_sha")
    if not isinstance(sha, str) and good is not None:
        sha = good.values.get("sha")
    if not isinstance(sha, str) or not sha:
        return None
    bad = failing.get("head_sha")
    branch = failing.get("branch") or (good.values.get("branch") if good else None)
    on = f" on {branch}" if branch else ""
    block: dict[str, Any] = (
        {**good.to_json()} if good is not None else {"at": None, "values": {"sha": sha}}
    )
    block["values"] = {**block["values"], "sha": sha}
    block["command"] = None
    repo_url = _repo_url(failing.get("run_url"))
    url = (
        f"{repo_url}/compare/{sha}...{bad}"
        if repo_url and isinstance(bad, str) and bad and bad != sha
        else None
    )
    block["url"] = url
    text = f"last green commit{on}: {sha[:12]}"
    if isinstance(bad, str) and bad and bad != sha:
        text += f"; failing at {bad[:12]}"
        text += f"; changes since: {url}" if url else ""
    block["text"] = text
    return block


def _repo_url(run_url: object) -> str | None:
    """`https://github.com/o/r/actions/runs/1` → `https://github.com/o/r` (GHE alike)."""
    if not isinstance(run_url, str) or "/actions/runs/" not in run_url:
        return None
    return run_url.split("/actions/runs/", 1)[0]


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
