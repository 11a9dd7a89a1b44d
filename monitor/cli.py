"""The `monitor` command: run the daemon, run checks once, validate, print the schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.app import App
from monitor.checks import CHECKS, CheckContext
from monitor.clock import SystemClock
from monitor.config import MonitorConfig, config_json_schema, default_config_path, load_config
from monitor.configtypes import CheckConfigBase
from monitor.errors import ConfigError
from monitor.httpclient import make_session
from monitor.limits import Limiter
from monitor.logs import configure_logging
from monitor.metrics import Metrics
from monitor.model import CheckResult
from monitor.scheduler import CheckRunner

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        print(json.dumps(config_json_schema(), indent=2))
        return EXIT_OK
    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
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
    fmt = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(json=fmt, level=args.log_level)
    return _run(config, path)


def _run(config: MonitorConfig, path: str) -> int:
    asyncio.run(App(config, config_path=os.path.abspath(path)).run())
    return EXIT_OK


def _check(config: MonitorConfig, names: list[str], *, as_json: bool) -> int:
    unknown = [n for n in names if config.check(n) is None]
    if unknown:
        print(f"unknown check(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    selected = [c for c in config.checks if c.name in names] if names else config.enabled_checks
    configure_logging(json=False, level="error")
    results = asyncio.run(_run_checks(config, selected))
    if as_json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print(_table(results))
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
        verdict = "ok" if r.ok else f"{r.outcome.value}: {r.failure.value if r.failure else '?'}"
        rows.append((r.check, r.kind, verdict, f"{r.duration_s * 1000:.0f} ms", r.message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    failed = sum(not r.ok for r in results)
    lines.append(f"\n{len(results) - failed} ok, {failed} failed")
    return "\n".join(lines)
