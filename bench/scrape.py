"""/metrics at 10,000 HTTP checks for each `daemon.phase_histograms` setting.

    python3 bench/scrape.py [--checks N]

Starts nginx and the daemon as `bench/run.py` does (10,000 checks at 30 s against one
local page), waits until every check has run, then for `per_kind` (the default), `false`
and `per_check` (reloaded in turn with SIGHUP; after a switch to `per_check` it waits
another interval so every check has its histograms): samples (series), bytes and the
wall time of a scrape (the faster of two).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# `run` is the sibling module, found through the path above.
from run import (
    Nginx,
    daemon_argv,
    daemon_config,
    daemon_env,
    fetch_metrics,
    free_port,
    started,
    wait_http,
)

INTERVAL_S = 30


def series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def runs(text: str) -> float:
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("monitor_check_runs_total{")
    )


def scrape(port: int) -> tuple[str, float, int]:
    text, first_s, size = fetch_metrics(port)
    _, second_s, _ = fetch_metrics(port)
    return text, min(first_s, second_s), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=10_000)
    args = parser.parse_args()
    checks: int = args.checks
    rows = []
    with tempfile.TemporaryDirectory(prefix="monitor-scrape-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        nginx = Nginx(tmp / "nginx")
        nginx.base.mkdir()
        nginx.write()
        with started(nginx.argv(), stderr=subprocess.DEVNULL):
            wait_http(nginx.url())
            port = free_port()
            config = tmp / "scrape.yaml"
            state = tmp / "state"
            urls = [nginx.url()] * checks
            daemon_config(config, port, state, urls, interval=f"{INTERVAL_S}s")
            argv = daemon_argv(config)
            with started(argv, stdout=subprocess.DEVNULL, env=daemon_env("auto")) as proc:
                wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
                deadline = time.monotonic() + 3 * INTERVAL_S
                while runs(fetch_metrics(port)[0]) < checks and time.monotonic() < deadline:
                    time.sleep(2)
                for setting in ("per_kind", "false", "per_check"):
                    if setting != "per_kind":
                        daemon_config(config, port, state, urls, interval=f"{INTERVAL_S}s",
                                      phases=setting)  # fmt: skip
                        proc.send_signal(signal.SIGHUP)
                        time.sleep(INTERVAL_S + 5 if setting == "per_check" else 5)
                    text, seconds, size = scrape(port)
                    rows.append((setting, series(text), size, seconds))
                    print(f"{setting}: {rows[-1][1]:,} series", file=sys.stderr)
    print(f"| `phase_histograms` at {checks:,} checks | series | bytes per scrape | scrape time |")
    print("|---|---|---|---|")
    for setting, n, size, seconds in rows:
        print(f"| `{setting}` | {n:,} | {size / 1e6:.1f} MB | {seconds:.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
