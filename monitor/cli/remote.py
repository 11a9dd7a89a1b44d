"""Commands that talk to a running daemon through its HTTP API (`cli.client`):
`incidents`, `incident`, `ack`, `resolve`, `assign`, `comment`, `note`, `severity`,
`report`, `drill`, `postmortem`, `silence`. Each registers its call with `set_defaults(call=…)`; a
missing config file is no error for them (they talk to the default address)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from monitor.cli.client import ApiClient, ApiError
from monitor.config.loader import MonitorConfig
from monitor.core.model import Incident, IncidentSource, IncidentStatus, Severity, TimelineEntry
from monitor.incidents.postmortem import render_postmortem
from monitor.incidents.postmortem_issue import GITHUB_API, PostmortemIssueError, open_issue

__all__ = ["add_commands", "entry_from_json", "incident_from_json"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Call = Callable[[ApiClient, argparse.Namespace], Coroutine[Any, Any, int]]


def add_commands(sub: Any, with_config: Callable[[Any], argparse.ArgumentParser]) -> None:
    """Registers the commands that talk to a running daemon through its API."""

    def api(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = with_config(sub.add_parser(name, help=help_text))
        p.set_defaults(handler=_talk, remote=True, call=_CALLS[name])
        p.add_argument(
            "--api",
            metavar="URL",
            help="daemon URL (default: $MONITOR_API_URL, else from daemon.listen)",
        )
        p.add_argument("--token", help="API token (default: $MONITOR_API_TOKEN, else api.token)")
        p.add_argument(
            "--as",
            dest="actor",
            default=os.environ.get("USER", "cli"),
            help="who is acting (default: $USER)",
        )
        return p

    p = api("incidents", "list incidents")
    p.add_argument("--state", help="triggered, acknowledged, resolved (comma-separated)")
    p.add_argument("--severity", help="P0, P1, P2 (comma-separated)")
    p.add_argument("--all", action="store_true", help="include resolved ones")
    p.add_argument("--json", action="store_true")
    p = api(
        "drill",
        "open a DRILL incident that pages through the real escalation, then resolves itself",
    )
    p.add_argument("--severity", default="P1", choices=["P0", "P1", "P2"])
    p = api(
        "postmortem",
        "print a post-mortem draft (markdown) for an incident, or open it as a GitHub issue",
    )
    p.add_argument("id", type=int)
    p.add_argument(
        "--github", metavar="OWNER/REPO", help="open it as an issue there (once) and link it"
    )
    p.add_argument(
        "--label",
        action="append",
        metavar="NAME",
        help="issue label, repeatable (default: postmortem and the severity)",
    )
    p.add_argument(
        "--github-api",
        metavar="URL",
        default=os.environ.get("GITHUB_API_URL") or GITHUB_API,
        help="GitHub API base (default: $GITHUB_API_URL, else https://api.github.com)",
    )
    p = api("incident", "show one incident with its timeline")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    for name, help_text in (("ack", "acknowledge an incident"), ("resolve", "resolve an incident")):
        p = api(name, help_text)
        p.add_argument("id", type=int)
        if name == "resolve":
            p.add_argument("--note", default="")
    p = api("assign", "assign an incident to a person")
    p.add_argument("id", type=int)
    p.add_argument("person")
    p = api("comment", "add a comment to an incident's timeline")
    p.add_argument("id", type=int)
    p.add_argument("text")
    p = api("note", "set or clear an incident's public note (what the status page says of it)")
    p.add_argument("id", type=int)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--public", metavar="TEXT", help="the note, written for the public")
    what.add_argument("--clear", action="store_true", help="remove it (the page shows the title)")
    p = api("severity", "set an incident's severity (triages a manual report)")
    p.add_argument("id", type=int)
    p.add_argument("severity", choices=["P0", "P1", "P2"])
    p = api("report", "open an incident by hand from a user report (untriaged: pages nobody)")
    p.add_argument("title")
    p.add_argument("--url", help="where it was reported (GitHub issue, Discord message)")
    p.add_argument("--text", default="")
    p = api("silence", "list, add or expire silences")
    p.add_argument("action", choices=["list", "add", "expire"])
    p.add_argument("id", nargs="?", type=int, help="silence id (expire)")
    p.add_argument("--check", action="append", default=[], metavar="GLOB")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--kind", action="append", default=[])
    p.add_argument("--for", dest="duration", default="1h", help="how long (default 1h)")
    p.add_argument("--comment", default="")
    p.add_argument("--json", action="store_true")


def _talk(args: argparse.Namespace, config: MonitorConfig | None, _path: str) -> int:
    """Runs the command's call against the daemon at `--api`, `$MONITOR_API_URL`, or the
    config's listen address (127.0.0.1:9180 without a config)."""
    host, port = ("127.0.0.1", 9180) if config is None else (config.daemon.host, config.daemon.port)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # the daemon listens everywhere; talk to it locally
    url = args.api or os.environ.get("MONITOR_API_URL") or f"http://{host}:{port}"
    token = (
        args.token
        or os.environ.get("MONITOR_API_TOKEN")
        or (config.api.write_token if config else None)
    )
    client = ApiClient(url, token)
    call: Call = args.call
    try:
        return asyncio.run(call(client, args))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _incidents(client: ApiClient, args: argparse.Namespace) -> int:
    params: dict[str, str] = {}
    if args.state or not args.all:
        params["state"] = args.state or "triggered,acknowledged"
    if args.severity:
        params["severity"] = args.severity
    doc = await client.get("/api/incidents", **params)
    print(
        json.dumps(doc["incidents"], indent=2) if args.json else _incident_table(doc["incidents"])
    )
    return EXIT_OK


async def _incident(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.get(f"/api/incidents/{args.id}")
    print(json.dumps(doc, indent=2) if args.json else _incident_text(doc))
    return EXIT_OK


async def _postmortem(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.get(f"/api/incidents/{args.id}")
    incident = incident_from_json(doc["incident"])
    timeline = [entry_from_json(e) for e in doc["timeline"]]
    markdown = render_postmortem(incident, timeline)
    if not args.github:
        print(markdown)
        return EXIT_OK
    return await _postmortem_issue(client, args, incident, timeline, markdown)


async def _drill(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.post("/api/drills", {"actor": args.actor, "severity": args.severity})
    return _changed(doc)


async def _report(client: ApiClient, args: argparse.Namespace) -> int:
    body = {
        "actor": args.actor,
        "title": args.title,
        "text": args.text,
        **({"url": args.url} if args.url else {}),
    }
    return _changed(await client.post("/api/incidents", body))


def _change(action: str, **fields: str) -> Call:
    """A POST to `/api/incidents/{id}/{action}` with the actor and the given arguments."""

    async def call(client: ApiClient, args: argparse.Namespace) -> int:
        body = {"actor": args.actor, **{k: getattr(args, v) for k, v in fields.items()}}
        return _changed(await client.post(f"/api/incidents/{args.id}/{action}", body))

    return call


async def _note(client: ApiClient, args: argparse.Namespace) -> int:
    path = f"/api/incidents/{args.id}/public-note"
    if args.clear:
        return _changed(await client.delete(path, {"actor": args.actor}))
    return _changed(await client.put(path, {"actor": args.actor, "note": args.public}))


def _changed(doc: dict[str, Any]) -> int:
    incident = doc["incident"]
    print(
        f"#{incident['id']} {incident['severity'] or 'untriaged'} {incident['status']}: {incident['title']}"
    )
    return EXIT_OK


async def _silence(client: ApiClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        doc = await client.get("/api/silences", active="1")
        if args.json:
            print(json.dumps(doc["silences"], indent=2))
            return EXIT_OK
        for s in doc["silences"]:
            print(
                f"#{s['id']} until {s['ends_at']} by {s['author']}: {s['matchers']} {s['comment']}"
            )
        return EXIT_OK
    if args.action == "expire":
        if args.id is None:
            print("error: give the id of the silence to expire", file=sys.stderr)
            return EXIT_USAGE
        await client.post(f"/api/silences/{args.id}/expire")
        print(f"silence #{args.id} expired")
        return EXIT_OK
    matchers = {"checks": args.check, "tags": args.tag, "kinds": args.kind}
    doc = await client.post("/api/silences", {
        "matchers": {k: v for k, v in matchers.items() if v}, "duration": args.duration,
        "author": args.actor, "comment": args.comment or "silenced from the CLI",
    })  # fmt: skip
    s = doc["silence"]
    print(f"silence #{s['id']} until {s['ends_at']}")
    return EXIT_OK


async def _postmortem_issue(
    client: ApiClient,
    args: argparse.Namespace,
    incident: Incident,
    timeline: list[TimelineEntry],
    markdown: str,
) -> int:
    linked = next(
        (e.data["url"] for e in timeline if e.event == "postmortem" and e.data.get("url")), None
    )
    if linked:
        print(f"post-mortem of incident #{incident.id} is already open: {linked}")
        return EXIT_OK
    labels = args.label or ["postmortem", *([str(incident.severity)] if incident.severity else [])]
    try:
        issue = await asyncio.to_thread(
            open_issue, repo=args.github, incident=incident, body=markdown, labels=labels,
            token=os.environ.get("GITHUB_TOKEN") or None, api_url=args.github_api,
        )  # fmt: skip
    except PostmortemIssueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    await client.post(
        f"/api/incidents/{incident.id}/postmortem", {"actor": args.actor, "url": issue.url}
    )
    verb = "opened" if issue.created else "found the existing"
    print(f"{verb} post-mortem issue #{issue.number} for incident #{incident.id}: {issue.url}")
    return EXIT_OK


def _incident_table(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return "no incidents"
    rows = [("ID", "SEV", "STATUS", "OPENED", "ASSIGNEE", "TITLE")]
    for i in incidents:
        rows.append((str(i["id"]), i["severity"] or "-", i["status"], i["opened_at"][:16].replace("T", " "),
                     i["assignee"] or "-", i["title"]))  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    return "\n".join("  ".join(r[c].ljust(widths[c]) for c in range(5)) + "  " + r[5] for r in rows)


def _incident_text(doc: dict[str, Any]) -> str:
    i = doc["incident"]
    lines = [f"#{i['id']} {i['severity'] or 'untriaged'} {i['status']}: {i['title']}"]
    lines += [
        f"  {k}: {i[k]}"
        for k in ("check", "assignee", "failure", "message", "suppressed", "report_url")
        if i.get(k)
    ]
    if note := i.get("public_note"):
        lines.append(f"  public note: {note}")
    if good := i.get("last_good"):
        lines.append(f"  last known good: {good.get('text', '')}")
    lines.append("timeline:")
    lines += [
        f"  {e['at'][:19].replace('T', ' ')}  {e['actor']:<10} {e['event']:<16} {e['text']}"
        + _repeats(e)
        for e in doc["timeline"]
    ]
    return "\n".join(lines)


def _repeats(entry: dict[str, Any]) -> str:
    """ " (seen 12 times, last 05:40:00)" for an entry seen again; empty for one seen once."""
    count, last = entry.get("count") or 1, entry.get("last_at")
    if count <= 1:
        return ""
    return f" (seen {count} times" + (f", last {str(last)[11:19]})" if last else ")")


def incident_from_json(doc: dict[str, Any]) -> Incident:
    """The API's incident document back into an `Incident`."""
    times = ("opened_at", "updated_at", "acknowledged_at", "resolved_at")
    known = {f.name for f in dataclasses.fields(Incident)}  # the API adds e.g. `runbook`
    fields: dict[str, Any] = {
        k: (datetime.fromisoformat(v) if k in times and v else v)
        for k, v in doc.items()
        if k in known
    }
    fields["status"] = IncidentStatus(fields["status"])
    fields["severity"] = Severity(fields["severity"]) if fields.get("severity") else None
    if "source" in fields:
        fields["source"] = IncidentSource(fields["source"])
    return Incident(**fields)


def entry_from_json(doc: dict[str, Any]) -> TimelineEntry:
    at = datetime.fromisoformat(doc["at"])
    last = doc.get("last_at")
    return TimelineEntry(
        doc["incident_id"], at, doc["event"], doc["actor"], doc["text"], doc.get("data") or {},
        count=doc.get("count") or 1, last_at=datetime.fromisoformat(last) if last else None,
    )  # fmt: skip


_CALLS: dict[str, Call] = {
    "incidents": _incidents, "incident": _incident, "postmortem": _postmortem,
    "drill": _drill, "report": _report, "silence": _silence, "note": _note,
    "ack": _change("ack"), "resolve": _change("resolve", note="note"),
    "assign": _change("assign", person="person"), "comment": _change("comment", text="text"),
    "severity": _change("severity", severity="severity"),
}  # fmt: skip
