"""The config fuzzer at length, and the worst documents the limits allow.

    python3 bench/config_fuzz.py --examples 10000    # the fuzzer, about 1 minute
    python3 bench/config_fuzz.py --limits            # worst cases up to 1 MiB

The fuzzer draws the documents of tests/test_config_fuzz.py (monitors.yaml mutated as
text; documents shaped by monitors.schema.json with hostile values) and counts what
each gave: ok, located errors, or what must never happen (a traceback, an unlocated
or internal error, a planted secret in a message). Times are CPU seconds of
`parse_config`; peak RSS is this process's (`ru_maxrss`).

`--limits` runs each worst case in a fresh process that imports the monitor, then
reports the CPU time of `load_config`, the peak RSS before and after it, and the answer.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fuzz(examples: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.configfuzz import BUNDLED, DOCUMENTS, judge

    counts: collections.Counter[str] = collections.Counter()
    worst = (0.0, "")
    bad: list[str] = []

    @settings(
        max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(DOCUMENTS)
    def run(text: str) -> None:
        nonlocal worst
        verdict = judge(text)
        counts[verdict.outcome] += 1
        if verdict.seconds > worst[0]:
            worst = (verdict.seconds, text)
        if verdict.outcome not in ("ok", "errors"):
            bad.append(f"{verdict.outcome}: {verdict.detail}")

    judge(BUNDLED)  # builds the validators once, outside the timings
    started = time.monotonic()
    run()
    total = sum(counts.values())
    print(f"documents: {total:,} in {time.monotonic() - started:.1f} s")
    for outcome in ("ok", "errors", "traceback", "unlocated", "internal", "secret"):
        print(f"  {outcome:10} {counts[outcome]:,}")
    again = min(judge(worst[1]).seconds for _ in range(3))  # without the run's collections
    print(
        f"worst CPU time: {worst[0] * 1000:.1f} ms; the same document alone: "
        f"{again * 1000:.1f} ms ({len(worst[1]):,} characters)"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for line in bad[:20]:
        print("  ", line)


def _worst_cases() -> dict[str, str]:
    from monitor.config.yamlsource import MAX_BYTES

    item = '  - {name: c%06d, kind: http, url: "http://x/%06d"}\n'
    count = (MAX_BYTES - 8) // len(item % (0, 0))
    real = "checks:\n" + "".join(item % (i, i) for i in range(count))
    entry = "  - name: c{0:06d}\n    kind: http\n    url: http://x/{0:06d}\n    timeout: 5s\n"
    blocks = (MAX_BYTES - 8) // len(entry.format(0))
    block = "checks:\n" + "".join(entry.format(i) for i in range(blocks))
    laughs = (
        "a0: &a0 ["
        + ", ".join(["lol"] * 9)
        + "]\n"
        + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 7))
    )
    anchor = "x: &x [" + ",".join(["a"] * 99_000) + "]\n"
    return {
        f"{count:,} flow-style checks": real,
        f"{blocks:,} block-style checks": block,
        "1 MiB flat list `[a,a,…]`": "checks: [" + ",".join(["a"] * (MAX_BYTES // 2 - 8)) + "]\n",
        "1 MiB of nested `[`": "[" * MAX_BYTES,
        "billion laughs (9 aliases, 6 levels)": laughs + "checks: []\n",
        "99,000-item anchor used 10 times": anchor + "y: [" + ", ".join(["*x"] * 10) + "]\n",
        "1 MiB of `- ` nesting": "- " * (MAX_BYTES // 2),
    }


_CHILD = """
import resource, sys, time
from monitor.config.loader import load_config
from monitor.core.errors import ConfigError
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.process_time()
try:
    config = load_config(sys.argv[1], {})
    answer = f"ok ({len(config.checks):,} checks)"
except ConfigError as exc:
    answer = str(exc.issues[0]).split(": ", 1)[1]
cpu = time.process_time() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{cpu:.3f} {base / 1024:.0f} {peak / 1024:.0f} {answer}")
"""


def limits() -> None:
    print(f"{'case':34} {'bytes':>9} {'CPU s':>6} {'RSS MB':>13}  answer")
    for name, text in _worst_cases().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.yaml"
            path.write_text(text)
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True,
            ).stdout  # fmt: skip
        cpu, base, peak, answer = out.split(" ", 3)
        size = len(text.encode())
        print(f"{name:34} {size:>9,} {cpu:>6} {base:>5} → {peak:>5}  {answer.strip()[:70]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=0)
    parser.add_argument("--limits", action="store_true")
    args = parser.parse_args()
    if args.limits:
        limits()
    if args.examples:
        fuzz(args.examples)


if __name__ == "__main__":
    main()
