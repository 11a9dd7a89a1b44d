"""The `monitor` command: run the daemon, run checks once, validate, print the schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.app import App
from monitor.checks import CHECKS, CheckContext
from monitor.checks.http.httpclient import make_session
from monitor.cli.client import ApiClient, ApiError
from monitor.config.loader import (
    MonitorConfig,
    config_json_schema,
    default_config_path,
    load_config,
)
from monitor.core.alertstate import AlertState
from monitor.core.clock import SystemClock
from monitor.core.configtypes import CheckConfigBase, format_duration, parse_duration
from monitor.core.errors import ConfigError
from monitor.core.logs import configure_logging
from monitor.core.model import (
    CheckResult,
    FailureKind,
    Incident,
    IncidentStatus,
    Severity,
    TimelineEntry,
)
from monitor.core.redact import redact, redact_text, remember_config
from monitor.engine.limits import Limiter
from monitor.engine.scheduler import CheckRunner
from monitor.engine.state import blindness
from monitor.incidents.postmortem import render_postmortem
from monitor.incidents.postmortem_issue import GITHUB_API, PostmortemIssueError, open_issue
from monitor.incidents.rules import Situation, classify
from monitor.metrics.exporter import Metrics
from monitor.paging.escalation import Policy
from monitor.paging.oncall import format_coverage, format_on_call, on_call
from monitor.paging.pager import page_notifiers
from monitor.store import StoreError, public_dsn
from monitor.store.sqlite import SqliteStore, default_state_path

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watches what an open-source project ships and pages whoever is on call.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", metavar="FILE",
            help="config file (default: $MONITOR_CONFIG, else ./monitors.yaml)",
        )  # fmt: skip
        return p

    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--log-format", default="auto", choices=["auto", "json", "console"],
        help="auto: JSON unless stdout is a terminal",
    )  # fmt: skip

    check = with_config(sub.add_parser("check", help="run checks once and report"))
    check.add_argument(
        "names", nargs="*", metavar="NAME", help="checks to run (default: all enabled)"
    )
    check.add_argument("--json", action="store_true", help="print a JSON array instead of a table")

    with_config(
        sub.add_parser("validate", help="check the config file; exit 1 listing every error")
    )
    sub.add_parser("schema", help="print the JSON Schema of the config file")
    explain = with_config(
        sub.add_parser(
            "explain", help="show which severity rule a failure of a check matches, and why"
        )
    )
    explain.add_argument("name", help="the check")
    explain.add_argument("--failure", help="failure kind (default: none given)")
    explain.add_argument(
        "--state",
        choices=["down", "degraded", "blind"],
        help="default: what the failure kind gives (blind when the monitor cannot see, "
        "degraded for stale, slow, …; else down)",
    )
    explain.add_argument(
        "--for", dest="failing_for", default="0s", help="how long it has been failing, e.g. 2h"
    )
    explain.add_argument("--at", help="when (ISO 8601, default now)")
    runbook = with_config(sub.add_parser("runbook", help="print a check's runbook URL"))
    runbook.add_argument("name", help="the check")
    oncall = with_config(
        sub.add_parser("oncall", help="who is on call now or at a time; --coverage lists gaps")
    )
    oncall.add_argument("--at", help="when (ISO 8601, default now)")
    oncall.add_argument(
        "--coverage", action="store_true", help="list every gap in 24x7 coverage; exit 1 if any"
    )
    oncall.add_argument(
        "--weeks", type=int, default=4, help="how far --coverage looks ahead (default 4)"
    )
    backup = with_config(
        sub.add_parser(
            "backup", help="copy the state store consistently, even while the daemon runs"
        )
    )
    backup.add_argument("dest", help="file to write")
    _api_commands(sub, with_config)
    return parser


def _api_commands(sub: Any, with_config: Any) -> None:
    """Commands that talk to a running daemon through its API."""

    def api(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = with_config(sub.add_parser(name, help=help_text))
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        print(json.dumps(config_json_schema(), indent=2))
        return EXIT_OK
    path = args.config or default_config_path()
    try:
        config = load_config(path)
        remember_config(config)  # its secrets are masked on every surface from here on
    except ConfigError as exc:
        if args.command in API_COMMANDS and not args.config and not os.path.exists(path):
            return _api_command(args, None)  # no config here: talk to the default address
        print(f"{path}: invalid config ({len(exc.issues)} error(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_FAILED if args.command == "validate" else EXIT_USAGE
    if args.command == "validate":
        enabled = len(config.enabled_checks)
        print(f"{path}: ok ({enabled} checks enabled, {len(config.checks) - enabled} disabled)")
        return EXIT_OK
    if args.command == "check":
        return _check(config, args.names, as_json=args.json)
    if args.command in API_COMMANDS:
        return _api_command(args, config)
    if args.command == "explain":
        return _explain(config, args)
    if args.command == "oncall":
        return _oncall(config, args)
    if args.command == "runbook":
        check = config.check(args.name)
        if check is None:
            print(f"unknown check: {args.name}", file=sys.stderr)
            return EXIT_USAGE
        if check.runbook is None:
            print(f"{args.name} has no runbook: set `runbook:` on the check", file=sys.stderr)
            return EXIT_FAILED
        print(check.runbook)
        return EXIT_OK
    if args.command == "backup":
        return asyncio.run(_backup(config, args.dest))
    fmt = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(json=fmt, level=args.log_level)
    return _run(config, path)


API_COMMANDS = frozenset(
    {
        "incidents",
        "incident",
        "postmortem",
        "drill",
        "ack",
        "resolve",
        "assign",
        "comment",
        "severity",
        "report",
        "silence",
    }
)


def _api_command(args: argparse.Namespace, config: MonitorConfig | None) -> int:
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
    try:
        return asyncio.run(_api_call(client, args))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _api_call(client: ApiClient, args: argparse.Namespace) -> int:
    cmd, who = args.command, {"actor": args.actor}
    if cmd == "incidents":
        params: dict[str, str] = {}
        if args.state or not args.all:
            params["state"] = args.state or "triggered,acknowledged"
        if args.severity:
            params["severity"] = args.severity
        doc = await client.get("/api/incidents", **params)
        print(
            json.dumps(doc["incidents"], indent=2)
            if args.json
            else _incident_table(doc["incidents"])
        )
        return EXIT_OK
    if cmd == "incident":
        doc = await client.get(f"/api/incidents/{args.id}")
        print(json.dumps(doc, indent=2) if args.json else _incident_text(doc))
        return EXIT_OK
    if cmd == "silence":
        return await _silence(client, args)
    if cmd == "postmortem":
        doc = await client.get(f"/api/incidents/{args.id}")
        incident = incident_from_json(doc["incident"])
        timeline = [entry_from_json(e) for e in doc["timeline"]]
        markdown = render_postmortem(incident, timeline)
        if not args.github:
            print(markdown)
            return EXIT_OK
        return await _postmortem_issue(client, args, incident, timeline, markdown)
    if cmd == "drill":
        doc = await client.post("/api/drills", {**who, "severity": args.severity})
    elif cmd == "report":
        body = {
            **who,
            "title": args.title,
            "text": args.text,
            **({"url": args.url} if args.url else {}),
        }
        doc = await client.post("/api/incidents", body)
    else:
        extra = {
            "ack": {}, "resolve": {"note": getattr(args, "note", "")},
            "assign": {"person": getattr(args, "person", "")}, "comment": {"text": getattr(args, "text", "")},
            "severity": {"severity": getattr(args, "severity", "")},
        }[cmd]  # fmt: skip
        doc = await client.post(f"/api/incidents/{args.id}/{cmd}", {**who, **extra})
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


def _explain(config: MonitorConfig, args: argparse.Namespace) -> int:
    check = config.check(args.name)
    if check is None:
        print(f"unknown check: {args.name}", file=sys.stderr)
        return EXIT_USAGE
    if args.failure is not None and args.failure not in {k.value for k in FailureKind}:
        print(
            f"unknown failure kind {args.failure!r}; one of: {', '.join(k.value for k in FailureKind)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        failing_for = parse_duration(args.failing_for)
        now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    state = args.state or (
        "blind" if blindness(check.kind, args.failure)
        else "degraded" if args.failure in _SOFT_FAILURES
        else "down"
    )  # fmt: skip
    situation = Situation(
        check=check.name, kind=check.kind, tags=frozenset(check.tags), failure=args.failure,
        state=AlertState(state), failing_for=failing_for, now=now,
    )  # fmt: skip
    verdict = classify(config.severity, situation)
    what = f"{check.name} ({check.kind}) {state}" + (
        f" with {args.failure}" if args.failure else ""
    )
    print(f"{what}, failing for {format_duration(failing_for)}, at {now:%Y-%m-%d %H:%M} UTC:")
    for line in verdict.trace:
        print(f"  {line}")
    result = verdict.severity.value if verdict.severity else "ignore (no incident)"
    print(f"→ {result} (rule {verdict.rule}{'' if verdict.auto_resolve else ', resolved by hand'})")
    if verdict.severity is not None:
        for line in _who_is_paged(config, verdict.severity, now):
            print(line)
    elif state != "blind":
        print("→ paged now: nobody (no incident)")
    if state == "blind":
        notifiers = {n: c.type for n, c in config.notifiers.items()} or {"console": "console"}
        chosen = config.escalation.health_policy(notifiers)
        how = "nowhere to post" if chosen is None else _describe_policy(*chosen)
        print(f"blind: the monitor cannot see {check.name}; a monitor-health incident → {how}")
    return EXIT_OK


# Failure kinds that are soft by nature: a check reports them as degraded, not down.
_SOFT_FAILURES = frozenset(
    k.value
    for k in (
        FailureKind.TLS_EXPIRING,
        FailureKind.SLOW,
        FailureKind.STALE,
        FailureKind.DEPRECATED,
        FailureKind.WORKFLOW_DISABLED,
    )
)


def _who_is_paged(config: MonitorConfig, severity: Severity, now: datetime) -> list[str]:
    """The policy an incident of `severity` runs, and who its page steps reach at `now`."""
    chosen = config.escalation.policy_for(severity)
    if chosen is None:
        return [f"policy: none for {severity}: nobody is paged (no escalation policies)"]
    name, policy = chosen
    via = page_notifiers(config.escalation, list(config.notifiers) or ["console"])
    current = on_call(config.oncall, now) if config.oncall is not None else None
    steps: list[str] = []
    paged: list[str] = []  # the first pass: who, and when if not at once
    offset = timedelta(0)
    for step in policy.steps:
        after = f"after {format_duration(offset)} unacknowledged: " if offset else ""
        if step.wait is not None:
            offset += step.wait
            steps.append(f"wait {format_duration(step.wait)}")
        elif step.post is not None:
            steps.append(f"post to {step.post}")
        elif isinstance(step.page, list):
            steps.append(f"page {', '.join(step.page)}")
            paged.append(after + ", ".join(step.page))
        else:
            found: list[str] = []
            if current is not None and step.page in ("primary", "secondary"):
                who = current.primary if step.page == "primary" else current.secondary
                found = [who.name] if who else []
            elif current is not None and current.rotation is not None and config.oncall:
                rotation = next(r for r in config.oncall.rotations if r.name == current.rotation)
                found = list(rotation.members)
            label = (
                f"{step.page} of {current.rotation}" if current and current.rotation else step.page
            )
            steps.append(f"page {label} ({', '.join(found) or 'nobody on call'})")
            paged.append(f"{after}{', '.join(found) or 'nobody'} ({label})")
    repeat = (
        f"; then {policy.repeat} more times from step {policy.repeat_from}" if policy.repeat else ""
    )
    lines = [f"policy {name}: {'; '.join(steps)}{repeat}"]
    if paged:
        lines.append(f"→ paged now via {', '.join(via)}: {'; '.join(paged)}")
    else:
        lines.append("→ paged now: nobody (the policy pages no one)")
    return lines


def _describe_policy(name: str, policy: Policy) -> str:
    steps = [
        f"post to {s.post}" if s.post else f"wait {format_duration(s.wait)}" if s.wait
        else f"page {s.page if isinstance(s.page, str) else ', '.join(s.page or [])}"
        for s in policy.steps
    ]  # fmt: skip
    return f"policy {name}: {'; '.join(steps)}"


def _oncall(config: MonitorConfig, args: argparse.Namespace) -> int:
    if config.oncall is None:
        print("no oncall: section in the config", file=sys.stderr)
        return EXIT_USAGE
    try:
        when = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if args.coverage:
        text, gap = format_coverage(config.oncall, when, args.weeks)
        print(text)
        return EXIT_FAILED if gap else EXIT_OK
    print(format_on_call(config.oncall, when))
    return EXIT_OK


async def _backup(config: MonitorConfig, dest: str) -> int:
    if (dsn := config.daemon.store_dsn) is not None:
        return _backup_postgres(dsn, dest)
    source = default_state_path(config.daemon.resolved_state_dir(os.environ))
    if not source.exists():
        print(f"error: no store at {source}", file=sys.stderr)
        return EXIT_FAILED
    store = SqliteStore(source)
    await store.open()
    try:
        await store.backup(dest)
    finally:
        await store.close()
    print(f"{source} → {dest}")
    return EXIT_OK


def _backup_postgres(dsn: str, dest: str) -> int:
    """The PostgreSQL store is backed up by PostgreSQL's own tools: say which, with the
    DSN named by its environment variable, never shown. Exit 2: nothing was written, so a
    backup job written for SQLite fails loudly instead of keeping no backup."""
    var = next((k for k, v in sorted(os.environ.items()) if v == dsn), None)
    source = f'"${var}"' if var else "'<the DSN of daemon.store>'"
    print(
        f"error: the store is PostgreSQL ({public_dsn(dsn)}); monitor backup copies the SQLite"
        " store only, and wrote nothing.\n"
        "Back up the database with pg_dump while the daemon runs, e.g.:\n"
        f"  pg_dump --format=custom --file={dest} {source}\n"
        "and restore it with pg_restore --clean --dbname=… into a stopped deployment.",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _run(config: MonitorConfig, path: str) -> int:
    try:
        loop_factory = event_loop_factory(os.environ.get("MONITOR_EVENT_LOOP", "auto"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(App(config, config_path=os.path.abspath(path)).run())
    except StoreError as exc:  # no store at start: refuse to run blind (systemd restarts)
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The daemon's event loop: uvloop when installed (`auto`) or asked for, else asyncio's.

    None means asyncio's default loop.
    """
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"MONITOR_EVENT_LOOP must be auto, uvloop or asyncio, not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError(
                "MONITOR_EVENT_LOOP=uvloop, but uvloop is not installed: pip install 'project-asset-monitor[uvloop]'"
            ) from None
        return None
    return uvloop.new_event_loop


def _check(config: MonitorConfig, names: list[str], *, as_json: bool) -> int:
    unknown = [n for n in names if config.check(n) is None]
    if unknown:
        print(f"unknown check(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    selected = [c for c in config.checks if c.name in names] if names else config.enabled_checks
    # stdout carries the results only (JSON with --json): logs, and anything a check or a
    # library prints while the checks run, go to stderr.
    configure_logging(json=False, level="error", stream=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        results = asyncio.run(_run_checks(config, selected))
    if as_json:
        print(json.dumps([redact(r.to_json()) for r in results], indent=2))
    else:
        print(redact_text(_table(results)))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


async def _run_checks(
    config: MonitorConfig, selected: Sequence[CheckConfigBase]
) -> list[CheckResult]:
    """Runs each selected check once, concurrently, with its retries and limits."""

    async def ignore(_config: CheckConfigBase, _result: CheckResult) -> None:
        return None

    clock = SystemClock()
    limiter = Limiter(config.limits)
    metrics = Metrics(CollectorRegistry())
    async with make_session(config.daemon.user_agent) as session:
        ctx = CheckContext(session=session, clock=clock, metrics=metrics)
        runners = [
            CheckRunner(CHECKS[c.kind](c, ctx), clock, limiter, metrics, ignore) for c in selected
        ]
        try:
            return list(await asyncio.gather(*(r.run_once() for r in runners)))
        finally:
            for runner in runners:
                runner.check.close()


def _table(results: Sequence[CheckResult]) -> str:
    rows = [("CHECK", "KIND", "RESULT", "TIME", "MESSAGE")]
    for r in results:
        outcome = "blind" if blindness(r.kind, r.failure) else r.outcome.value
        verdict = "ok" if r.ok else f"{outcome}: {r.failure.value if r.failure else '?'}"
        rows.append((r.check, r.kind, verdict, f"{r.duration_s * 1000:.0f} ms", r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    failed = sum(not r.ok for r in results)
    blind = sum(blindness(r.kind, r.failure) for r in results)
    lines.append(
        f"\n{len(results) - failed} ok, {failed - blind} failed"
        + (f", {blind} blind (the monitor could not see)" if blind else "")
    )
    return "\n".join(lines)


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
    return Incident(**fields)


def entry_from_json(doc: dict[str, Any]) -> TimelineEntry:
    at = datetime.fromisoformat(doc["at"])
    last = doc.get("last_at")
    return TimelineEntry(
        doc["incident_id"], at, doc["event"], doc["actor"], doc["text"], doc.get("data") or {},
        count=doc.get("count") or 1, last_at=datetime.fromisoformat(last) if last else None,
    )  # fmt: skip
