"""The `monitor` command: run the daemon, run checks once, validate, print the schema, and
talk to a running daemon.

Each subcommand registers its handler with `set_defaults(handler=…)`: the local ones in
`cli.local` (they need the config file), the ones that talk to the daemon in
`cli.remote` (through `cli.client`). `main` parses, loads the config once, and calls the
handler as `handler(args, config, path)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.cli import local, remote
from monitor.cli.local import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from monitor.config.loader import default_config_path, load_config
from monitor.core.errors import ConfigError
from monitor.core.redact import remember_config

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]


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

    local.add_commands(sub, with_config)
    remote.add_commands(sub, with_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not getattr(args, "needs_config", True):
        return int(args.handler(args, None, ""))
    path = args.config or default_config_path()
    try:
        config = load_config(path)
        remember_config(config)  # its secrets are masked on every surface from here on
    except ConfigError as exc:
        if getattr(args, "remote", False) and not args.config and not os.path.exists(path):
            return int(args.handler(args, None, path))  # no config here: the default address
        print(f"{path}: invalid config ({len(exc.issues)} error(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return int(getattr(args, "invalid_config_exit", EXIT_USAGE))
    return int(args.handler(args, config, path))
