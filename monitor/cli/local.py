"""Commands that work on the config file and this machine, without a running daemon:
`run` (the daemon itself), `check`, `validate`, `schema`, `explain`, `runbook`, `oncall`,
`backup`. Each registers its handler with `set_defaults(handler=…)`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.app import App, run_checks_once
from monitor.config.loader import MonitorConfig, config_json_schema
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import format_duration, parse_duration
from monitor.core.logs import configure_logging
from monitor.core.model import CheckResult, FailureKind, Severity
from monitor.core.redact import redact, redact_text
from monitor.engine.state import blindness
from monitor.incidents.rules import Situation, classify
from monitor.paging.escalation import Policy
from monitor.paging.oncall import format_coverage, format_on_call, on_call
from monitor.paging.pager import page_notifiers
from monitor.store import StoreError, public_dsn
from monitor.store.sqlite import SqliteStore, default_state_path

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "add_commands", "event_loop_factory"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_commands(sub: Any, with_config: Callable[[Any], argparse.ArgumentParser]) -> None:
    """Registers the local commands on the `monitor` parser's subcommands."""
    run = with_config(sub.add_parser("run", help="run the daemon"))
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--log-format", default="auto", choices=["auto", "json", "console"],
        help="auto: JSON unless stdout is a terminal",
    )  # fmt: skip
    run.set_defaults(handler=_run_command)

    check = with_config(sub.add_parser("check", help="run checks once and report"))
    check.add_argument(
        "names", nargs="*", metavar="NAME", help="checks to run (default: all enabled)"
    )
    check.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    check.set_defaults(handler=_check_command)

    with_config(
        sub.add_parser("validate", help="check the config file; exit 1 listing every error")
    ).set_defaults(handler=_validate, invalid_config_exit=EXIT_FAILED)
    sub.add_parser("schema", help="print the JSON Schema of the config file").set_defaults(
        handler=_schema, needs_config=False
    )
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
    explain.add_argument(
        "--burn-rate",
        choices=["fast", "slow"],
        help="explain an SLO burn of the check or group NAME instead of a failure",
    )
    explain.set_defaults(handler=_explain)
    runbook = with_config(sub.add_parser("runbook", help="print a check's runbook URL"))
    runbook.add_argument("name", help="the check")
    runbook.set_defaults(handler=_runbook)
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
    oncall.set_defaults(handler=_oncall)
    backup = with_config(
        sub.add_parser(
            "backup", help="copy the state store consistently, even while the daemon runs"
        )
    )
    backup.add_argument("dest", help="file to write")
    backup.set_defaults(handler=_backup_command)


def _schema(_args: argparse.Namespace, _config: MonitorConfig | None, _path: str) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return EXIT_OK


def _validate(_args: argparse.Namespace, config: MonitorConfig, path: str) -> int:
    enabled = len(config.enabled_checks)
    print(f"{path}: ok ({enabled} checks enabled, {len(config.checks) - enabled} disabled)")
    return EXIT_OK


def _check_command(args: argparse.Namespace, config: MonitorConfig, _path: str) -> int:
    return _check(config, args.names, as_json=args.json)


def _runbook(args: argparse.Namespace, config: MonitorConfig, _path: str) -> int:
    check = config.check(args.name)
    if check is None:
        print(f"unknown check: {args.name}", file=sys.stderr)
        return EXIT_USAGE
    if check.runbook is None:
        print(f"{args.name} has no runbook: set `runbook:` on the check", file=sys.stderr)
        return EXIT_FAILED
    print(check.runbook)
    return EXIT_OK


def _backup_command(args: argparse.Namespace, config: MonitorConfig, _path: str) -> int:
    return asyncio.run(_backup(config, args.dest))


def _run_command(args: argparse.Namespace, config: MonitorConfig, path: str) -> int:
    fmt = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(json=fmt, level=args.log_level)
    return _run(config, path)


def _explain(args: argparse.Namespace, config: MonitorConfig, _path: str) -> int:
    if args.burn_rate is not None:
        return _explain_burn(args, config)
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
    when = _when(args)
    if when is None:
        return EXIT_USAGE
    failing_for, now = when
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


def _explain_burn(args: argparse.Namespace, config: MonitorConfig) -> int:
    """`explain NAME --burn-rate fast|slow`: the rule an SLO burn of a check or a group
    matches (`engine.slo`), and who it pages."""
    check = config.check(args.name)
    group = config.groups.get(args.name)
    if check is None and group is None:
        print(f"unknown check or group: {args.name}", file=sys.stderr)
        return EXIT_USAGE
    when = _when(args)
    if when is None:
        return EXIT_USAGE
    burning_for, now = when
    kind, tags = ("group", frozenset()) if check is None else (check.kind, frozenset(check.tags))
    slo = check.slo if check is not None else group.slo if group is not None else None
    situation = Situation(
        check=args.name, kind=kind, tags=tags, failure=FailureKind.SLO_BURN.value,
        state=AlertState.DOWN, failing_for=burning_for, now=now, burn_rate=args.burn_rate,
    )  # fmt: skip
    verdict = classify(config.severity, situation)
    what = f"the {'check' if check is not None else 'group'} {args.name}"
    print(f"{what} burning its error budget {args.burn_rate}, for {format_duration(burning_for)}, "
          f"at {now:%Y-%m-%d %H:%M} UTC:")  # fmt: skip
    if slo is None:
        print(f"  note: {args.name} has no slo: it never burns")
    for line in verdict.trace:
        print(f"  {line}")
    result = verdict.severity.value if verdict.severity else "ignore (no incident)"
    print(f"→ {result} (rule {verdict.rule}{'' if verdict.auto_resolve else ', resolved by hand'})")
    if verdict.severity is not None:
        for line in _who_is_paged(config, verdict.severity, now):
            print(line)
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


def _oncall(args: argparse.Namespace, config: MonitorConfig, _path: str) -> int:
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
        results = asyncio.run(run_checks_once(config, selected))
    if as_json:
        print(json.dumps([redact(r.to_json()) for r in results], indent=2))
    else:
        print(redact_text(_table(results)))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


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


def _when(args: argparse.Namespace) -> tuple[timedelta, datetime] | None:
    """`--failing-for` and `--at` (UTC when no zone is given); None after saying why not."""
    try:
        duration = parse_duration(args.failing_for)
        now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return duration, now if now.tzinfo is not None else now.replace(tzinfo=UTC)
