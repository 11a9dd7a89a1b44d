"""Three replicas on one PostgreSQL: runs per check, takeover after kill -9, page latency,
pages through 100 kills, and CPU per probe against the single-process daemon.

    python3 bench/fleet.py [--replicas 3] [--checks 3000] [--interval 10] [--duration 180]
                           [--kills 100] [--json FILE]

Everything runs on this machine, on 127.0.0.1: a private PostgreSQL cluster (initdb and
pg_ctl, its own port and socket directory, as `tests/postgres.py` starts it), a private
nginx, a webhook receiver in a child process, and the replicas: real `python3 -m monitor
run` processes sharing one config file and one database. Each replica's probes carry its
own User-Agent (`daemon.user_agent: fleet-bench/${BENCH_REPLICA}`, the only line that
differs, through the environment), and nginx logs `$msec $status $uri $http_user_agent`
for every request, so who probed what, and when, is measured outside the daemons.

The checks: `--checks` HTTP checks at `--interval` against one unique nginx path each
(`/c/NNNNN`, answered 200 by nginx itself); 50 `lat*` checks at 1 s and 20 `esc*` checks
at 1 s against files under `/flip/`, which answer 500 once the file is removed. Every
check has `failure_threshold: 1`. A `lat*` incident is posted once to the webhook; an
`esc*` incident escalates through a post every 3 s until the kills are over.

Phases, in order, each printed as it ends:
  a. steady window (`--duration`): runs per check per interval across the fleet, and
     duplicates (a run less than half an interval after the previous run of its check);
  e. in the same window: CPU of each replica (/proc/PID/stat utime+stime) per probe it
     made (its User-Agent in the log);
  c. failure → page: the 50 `lat*` files removed one every 100 ms; latency from nginx's
     timestamp of the first 500 of a check to the arrival of its page; then the files
     come back, and when every incident is resolved the next of `--rounds` rounds (4:
     200 failures, so p99 is not simply the largest);
  b. kill -9 of one replica: for each check it probed in its last interval, the time from
     the kill to that check's next run by anyone;
  d. the `esc*` targets fail, then `--kills` times a random replica is killed with
     SIGKILL and started again (2 to 5 s apart): every page the policy implies must arrive
     (lost: a post that never came) and none twice under different idempotency keys;
  then the fleet stops and the single-process daemon on SQLite runs for e one replica's
  share of each kind of check (a third of the `/c/` checks at `--interval`, of the `lat*`
  and of the `esc*` checks at 1 s, against the same targets), and for c that share of
  `/c/` checks with all the `lat*` and `esc*` checks.

With `--e-together` the single daemon for e runs beside the fleet instead, with the same
share of the checks, is measured in the same window and stopped after it: the machine's
speed drifts over minutes (other tenants), and a comparison of two windows minutes apart
carries that drift, where one window does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# `run` is the sibling module, found through the first path above; `tests.postgres`
# (the private cluster of the test suite) through the second.
from run import CLK_TCK, cpu_seconds, free_port, started, wait_http

ROOT = Path(__file__).resolve().parent.parent
LAT_CHECKS = 50
ESC_CHECKS = 20
ESC_WAIT_S = 3


def quantile(values: list[float], q: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- nginx and its access log ------------------------------------------------------------


@dataclass
class Hit:
    t: float
    status: int
    uri: str
    agent: str


@dataclass
class Nginx:
    base: Path
    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)
    _offset: int = 0

    @property
    def log(self) -> Path:
        return self.base / "access.log"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def flip(self, name: str, up: bool) -> None:
        path = self.base / "www" / "flip" / name
        if up:
            path.write_text("ok\n")
        else:
            path.unlink(missing_ok=True)

    def write(self, names: list[str]) -> None:
        (self.base / "www" / "flip").mkdir(parents=True, exist_ok=True)
        for name in names:
            self.flip(name, up=True)
        for tmp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.base / tmp).mkdir(exist_ok=True)
        b = self.base
        (b / "nginx.conf").write_text(f"""
worker_processes 1;
pid {b}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 8192; }}
http {{
  log_format fleet '$msec $status $uri $http_user_agent';
  access_log {self.log} fleet buffer=64k flush=200ms;
  client_body_temp_path {b}/body; proxy_temp_path {b}/proxy; fastcgi_temp_path {b}/fastcgi;
  uwsgi_temp_path {b}/uwsgi; scgi_temp_path {b}/scgi;
  default_type text/plain;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    root {b}/www;
    location /c/ {{ return 200 "ok\\n"; }}
    location /flip/ {{ try_files $uri =500; }}
  }}
}}
""")

    def argv(self) -> list[str]:
        import shutil

        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(self.base), "-c", str(self.base / "nginx.conf"), "-e", "stderr",
                "-g", "daemon off;"]  # fmt: skip

    def read(self) -> list[Hit]:
        """Every request logged so far (new lines parsed, old ones kept)."""
        with contextlib.suppress(FileNotFoundError), self.log.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
            end = data.rfind(b"\n") + 1
            self._offset += end
            for line in data[:end].decode(errors="replace").splitlines():
                parts = line.split(" ", 3)
                if len(parts) == 4:
                    self.hits.append(Hit(float(parts[0]), int(parts[1]), parts[2], parts[3]))
        return self.hits

    def settle(self) -> list[Hit]:
        """The log after nginx's buffer (flushed every 200 ms) has reached the file."""
        time.sleep(0.5)
        return self.read()


# --- the webhook receiver (a child process: the harness's own work does not delay it) ----


def receiver_main(port: int, out: Path) -> None:
    import asyncio

    from aiohttp import web

    sink = out.open("a", buffering=1)

    async def hook(request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        incident = body.get("incident") or {}
        sink.write(json.dumps({
            "t": at, "key": request.headers.get("Idempotency-Key", ""), "event": body.get("event"),
            "incident": incident.get("id"), "check": incident.get("check"),
        }) + "\n")  # fmt: skip
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


@dataclass
class Page:
    t: float
    key: str
    event: str
    incident: int | None
    check: str | None


def read_pages(path: Path) -> list[Page]:
    pages = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            pages.append(Page(doc["t"], doc["key"], doc["event"], doc["incident"], doc["check"]))
    return pages


# --- the daemons -------------------------------------------------------------------------


def escalation_steps(seconds: float) -> tuple[int, int]:
    """(posts per pass, repeat) for a post every ESC_WAIT_S lasting at least `seconds`."""
    needed = math.ceil(seconds / ESC_WAIT_S) + 1
    per_pass = math.ceil(needed / 21)  # a policy repeats at most 20 times
    return per_pass, math.ceil(needed / per_pass) - 1


def share(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """What one replica runs of the fleet's checks: `/c/` checks at `--interval`, then
    `lat*` and `esc*` checks at 1 s. The single daemon of e runs as many of each, against
    the same targets (its `/flip/` checks answer a static file, which costs a probe more
    than `/c/`'s `return 200`): the same work a second, not only the same probes."""
    n = args.replicas
    return round(args.checks / n), args.interval, round(LAT_CHECKS / n), round(ESC_CHECKS / n)


def write_config(path: Path, nginx: Nginx, hook_port: int, checks: int, interval: int,
                 per_pass: int, repeat: int, lat: int = LAT_CHECKS, esc: int = ESC_CHECKS) -> None:  # fmt: skip
    steps = ", ".join(["{post: hook}", f"{{wait: {ESC_WAIT_S}s}}"] * per_pass)
    lines = [
        f"defaults: {{interval: {interval}s, timeout: 2s, failure_threshold: 1, success_threshold: 1}}",
        "daemon:",
        '  listen: "127.0.0.1:${BENCH_PORT}"',
        '  state_dir: "${BENCH_STATE}"',
        "  store: ${MONITOR_DATABASE_URL:-}",
        '  user_agent: "fleet-bench/${BENCH_REPLICA}"',
        "  shutdown_grace: 2s",
        "api: {token: bench}",
        "limits: {max_concurrency: 512, max_per_host: 64}",
        "incidents: {cooldown: 0s}",
        "severity:",
        '  - {match: {checks: ["lat*"]}, severity: P1}',
        '  - {match: {checks: ["esc*"]}, severity: P2}',
        "notifiers:",
        f'  hook: {{type: webhook, url: "http://127.0.0.1:{hook_port}/hook"}}',
        "escalation:",
        "  severities: {P0: once, P1: once, P2: esc}",
        "  policies:",
        "    once: {steps: [{post: hook}]}",
        f"    esc: {{steps: [{steps}], repeat: {repeat}}}",
        "checks:",
        *(f'  - {{name: c{i:05d}, kind: http, url: "{nginx.url(f"/c/{i:05d}")}"}}' for i in range(checks)),
        *(f'  - {{name: lat{i:03d}, kind: http, interval: 1s, url: "{nginx.url(f"/flip/lat{i:03d}")}"}}'
          for i in range(lat)),
        *(f'  - {{name: esc{i:03d}, kind: http, interval: 1s, url: "{nginx.url(f"/flip/esc{i:03d}")}"}}'
          for i in range(esc)),
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Replica:
    name: str
    config: Path
    tmp: Path
    dsn: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_PORT": str(self.port),
               "BENCH_STATE": str(self.tmp / f"state-{self.name}"), "BENCH_REPLICA": self.name,
               "MONITOR_DATABASE_URL": self.dsn, "MONITOR_EVENT_LOOP": "auto"}  # fmt: skip
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(self.config), "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        log.close()

    def ready(self, timeout: float = 120) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/readyz", timeout=timeout, interval=0.1)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    @property
    def log(self) -> Path:
        return self.tmp / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


# --- the figures -------------------------------------------------------------------------


def duplicates(hits: list[Hit], interval: float) -> int:
    """Runs less than half an interval after the previous run of the same check."""
    times: dict[str, list[float]] = defaultdict(list)
    for h in hits:
        times[h.uri].append(h.t)
    return sum(
        1 for ts in times.values() for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)
        if b - a < interval / 2
    )  # fmt: skip


def runs_per_interval(hits: list[Hit], t0: float, t1: float, checks: int, interval: float) -> dict[str, Any]:  # fmt: skip
    """Runs of the `/c/` checks in [t0, t1): per check per interval, and duplicates."""
    times: dict[str, list[float]] = defaultdict(list)
    for h in hits:
        if t0 <= h.t < t1 and h.uri.startswith("/c/"):
            times[h.uri].append(h.t)
    runs = sum(len(v) for v in times.values())
    dups = duplicates([h for h in hits if t0 <= h.t < t1 and h.uri.startswith("/c/")], interval)
    per_check = [len(times.get(f"/c/{i:05d}", [])) / ((t1 - t0) / interval) for i in range(checks)]
    return {
        "window_s": t1 - t0,
        "runs": runs,
        "runs_per_check_per_interval": runs / checks / ((t1 - t0) / interval),
        "per_check_min": min(per_check),
        "per_check_max": max(per_check),
        "checks_never_run": sum(1 for v in per_check if v == 0),
        "duplicates": dups,
        "duplicate_share": dups / runs if runs else float("nan"),
    }


def opened_at(logs: list[Path], names: list[str], since: float) -> dict[str, float]:
    """When each check's incident was opened, from the daemons' `incident_opened` lines."""
    found: dict[str, float] = {}
    for log in logs:
        with contextlib.suppress(FileNotFoundError):
            for line in log.read_text(errors="replace").splitlines():
                if '"incident_opened"' not in line:
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    event = json.loads(line)
                    at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                    t = at.replace(tzinfo=at.tzinfo or UTC).timestamp()
                    if event.get("check") in names and t >= since:
                        found[event["check"]] = min(found.get(event["check"], t), t)
    return found


def latency(nginx: Nginx, receiver: Path, names: list[str], logs: list[Path], rounds: int,
            timeout: float = 60) -> dict[str, Any]:  # fmt: skip
    """`rounds` rounds of `latency_round`, each after every incident of the last resolved."""
    values: list[float] = []
    to_open: list[float] = []
    to_page: list[float] = []
    for n in range(rounds):
        v, o, p = latency_round(nginx, receiver, names, logs, timeout)
        values += v
        to_open += o
        to_page += p
        print(f"c: round {n + 1}: {len(v)} pages, largest {max(v, default=0):.1f} ms",
              file=sys.stderr)  # fmt: skip
    return {
        "incidents": len(names) * rounds,
        "measured": len(values),
        "p50_ms": statistics.median(values) if values else float("nan"),
        "p99_ms": quantile(values, 0.99),
        "max_ms": max(values) if values else float("nan"),
        "over_50_ms": sum(1 for v in values if v > 50),
        "to_open_p50_ms": statistics.median(to_open) if to_open else float("nan"),
        "to_open_p99_ms": quantile(to_open, 0.99),
        "open_to_page_p50_ms": statistics.median(to_page) if to_page else float("nan"),
        "open_to_page_p99_ms": quantile(to_page, 0.99),
    }


def latency_round(nginx: Nginx, receiver: Path, names: list[str], logs: list[Path],
                  timeout: float) -> tuple[list[float], list[float], list[float]]:  # fmt: skip
    """Removes each target file (one every 100 ms); nginx's time of the first 500 of each
    check to the arrival of its first `trigger` page. Then the files come back and the
    round ends when every check's incident is resolved (its `resolve` post)."""
    since = time.time()
    for name in names:
        nginx.flip(name, up=False)
        time.sleep(0.1)
    deadline = time.monotonic() + timeout
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline:
        arrived = {}
        for p in read_pages(receiver):
            if p.event == "trigger" and p.check in names and p.t >= since:
                arrived.setdefault(p.check, p.t)
        if len(arrived) == len(names):
            break
        time.sleep(0.5)
    failed: dict[str, float] = {}
    for h in nginx.settle():
        name = h.uri.rsplit("/", 1)[-1]
        if h.status == 500 and h.t >= since - 0.001 and name in names:
            failed.setdefault(name, h.t)
    values = [1000 * (arrived[n] - failed[n]) for n in names if n in arrived and n in failed]
    # Where the time went: failure to the incident opened (the owner's log line), and from
    # there to the page's arrival (escalation, outbox, the leader, delivery).
    opened = opened_at(logs, names, since)
    to_open = [1000 * (opened[n] - failed[n]) for n in names if n in opened and n in failed]
    to_page = [1000 * (arrived[n] - opened[n]) for n in names if n in opened and n in arrived]
    back = time.time()
    for name in names:
        nginx.flip(name, up=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resolved = {p.check for p in read_pages(receiver) if p.event == "resolve" and p.t >= back}
        if resolved >= set(names):
            break
        time.sleep(0.5)
    return values, to_open, to_page


def cpu_window(procs: dict[str, int], nginx: Nginx, seconds: float) -> tuple[float, float, dict[str, Any]]:  # fmt: skip
    """Sleeps `seconds`; (t0, t1, per agent: CPU seconds, probes, ms per probe)."""
    cpu0 = {name: cpu_seconds(pid) for name, pid in procs.items()}
    t0 = time.time()
    time.sleep(seconds)
    t1 = time.time()
    cpu1 = {name: cpu_seconds(pid) for name, pid in procs.items()}
    probes: dict[str, int] = defaultdict(int)
    for h in nginx.settle():
        if t0 <= h.t < t1:
            probes[h.agent] += 1
    out = {}
    for name in procs:
        n = probes.get(f"fleet-bench/{name}", 0)
        cpu = cpu1[name] - cpu0[name]
        out[name] = {"cpu_s": cpu, "probes": n, "probes_per_s": n / (t1 - t0),
                     "ms_per_probe": 1000 * cpu / n if n else float("nan")}  # fmt: skip
    return t0, t1, out


def takeover(nginx: Nginx, replicas: list[Replica], interval: float, timeout: float = 90) -> dict[str, Any]:  # fmt: skip
    victim = random.choice(replicas)
    before = nginx.settle()
    killed_at = time.time()
    victim.kill9()
    last = {h.uri: h.t for h in before if h.agent == f"fleet-bench/{victim.name}"
            and h.uri.startswith("/c/") and killed_at - interval <= h.t < killed_at}  # fmt: skip
    owned = set(last)
    print(f"b: killed {victim.name} (pid {victim.pid}); it probed {len(owned)} checks in its "
          f"last {interval:g} s", file=sys.stderr)  # fmt: skip
    again: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(again) < len(owned):
        time.sleep(1)
        for h in nginx.read():
            if h.t > killed_at and h.uri in owned:
                again.setdefault(h.uri, h.t)
    delays = [again[u] - killed_at for u in owned if u in again]
    # Beyond its schedule: the next run against the last run before the kill + an interval.
    late = [again[u] - last[u] - interval for u in owned if u in again]
    after = [h for h in nginx.settle() if h.t > killed_at and h.uri.startswith("/c/")]
    dup = duplicates(after, interval)
    victim.start()
    victim.ready()
    return {
        "victim": victim.name,
        "its_checks": len(owned),
        "ran_again": len(delays),
        "p50_s": statistics.median(delays) if delays else float("nan"),
        "p99_s": quantile(delays, 0.99),
        "max_s": max(delays) if delays else float("nan"),
        "late_p99_s": quantile(late, 0.99),
        "late_max_s": max(late) if late else float("nan"),
        "duplicates_after": dup,
        "runs_after": len(after),
    }


def kills(nginx: Nginx, receiver: Path, replicas: list[Replica], count: int, per_pass: int,
          repeat: int) -> dict[str, Any]:  # fmt: skip
    names = [f"esc{i:03d}" for i in range(ESC_CHECKS)]
    since = time.time()
    for name in names:
        nginx.flip(name, up=False)
    deadline, first = time.monotonic() + 60, set()
    while time.monotonic() < deadline:
        first = {p.check for p in read_pages(receiver) if p.event == "trigger" and p.check in names}
        if len(first) == len(names):
            break
        time.sleep(0.5)
    print(f"d: {len(first)}/{len(names)} escalations started; {count} kills …", file=sys.stderr)
    for k in range(count):
        time.sleep(random.uniform(2, 5))
        victim = random.choice(replicas)
        victim.kill9()
        victim.start()
        if (k + 1) % 10 == 0:
            print(f"d: {k + 1} kills", file=sys.stderr)
    kills_done = time.time()
    # Every escalation runs to its end: wait for the last post of each, or its due time + 60 s.
    posts = per_pass * (repeat + 1)
    expected = {(p, 2 * s) for p in range(repeat + 1) for s in range(per_pass)}
    span = (posts - 1) * ESC_WAIT_S
    deadline = time.monotonic() + max(0.0, since + span - time.time()) + 60
    key_re = re.compile(r"^incident:(\d+):(\d+):p(\d+)s(\d+):(.+)$")
    while True:
        pages = [p for p in read_pages(receiver)
                 if p.event == "trigger" and p.check in names and p.t >= since]  # fmt: skip
        got: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for p in pages:
            m = key_re.match(p.key)
            if m:
                got[int(m.group(1))].add((int(m.group(3)), int(m.group(4))))
        if (len(got) >= len(names) and all(expected <= v for v in got.values())) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(1)
    for name in names:
        nginx.flip(name, up=True)
    # The incidents of the esc checks, from the store (through any replica's API).
    incidents: dict[str, list[int]] = defaultdict(list)
    for r in replicas:
        with contextlib.suppress(OSError, ValueError):
            r.ready(timeout=60)
            for i in api(r.port, "/api/incidents?limit=1000")["incidents"]:
                if i.get("check") in names:
                    incidents[i["check"]].append(i["id"])
            break
    keys_by_slot: dict[tuple[int, int, int], set[str]] = defaultdict(set)
    arrivals: dict[tuple[int, int, int], float] = {}
    unparsed = 0
    for p in pages:
        m = key_re.match(p.key)
        if not m:
            unparsed += 1
            continue
        slot = (int(m.group(1)), int(m.group(3)), int(m.group(4)))
        keys_by_slot[slot].add(p.key)
        arrivals[slot] = min(arrivals.get(slot, p.t), p.t)
    ids = sorted({i for v in incidents.values() for i in v} | {s[0] for s in keys_by_slot})
    lost = sum(1 for i in ids for n, s in expected if (i, n, s) not in keys_by_slot)
    different = sum(len(v) - 1 for v in keys_by_slot.values())
    same_key = len(pages) - len({p.key for p in pages})
    # How late each post came, against the first post of its escalation plus its offset.
    late = []
    for (i, n, s), t in arrivals.items():
        if (i, 0, 0) in arrivals:
            due = arrivals[(i, 0, 0)] + (n * per_pass + s // 2) * ESC_WAIT_S
            late.append(t - due)
    return {
        "kills": count,
        "starts": sum(r.starts for r in replicas),
        "kill_phase_s": kills_done - since,
        "escalations": len(ids),
        "checks_with_more_than_one_incident": sum(1 for v in incidents.values() if len(v) > 1),
        "expected_pages": len(ids) * len(expected),
        "received_pages": len(pages),
        "lost": lost,
        "duplicates_different_keys": different,
        "duplicates_same_key": same_key,
        "unparsed_keys": unparsed,
        "lateness_p99_s": quantile(late, 0.99),
        "lateness_max_s": max(late) if late else float("nan"),
    }


# --- the run -----------------------------------------------------------------------------


def commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip() or "unknown"


def postgres_cpu(data: Path) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its live children, and the
    children it has reaped (cutime + cstime)."""
    try:
        master = int((data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = stat.read_text().rsplit(")", 1)[1].split()
            if int(f[1]) == master:
                total += int(f[11]) + int(f[12])
    return total / CLK_TCK


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, Path]]:
    from tests.postgres import Cluster, find_bin

    bindir = find_bin()
    if bindir is None:
        raise SystemExit("needs PostgreSQL's server binaries (Debian package 'postgresql')")
    cluster = Cluster(bindir)
    try:
        yield cluster.start(), cluster.data
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--checks", type=int, default=3000, help="HTTP checks at --interval")
    parser.add_argument("--interval", type=int, default=10, help="seconds")
    parser.add_argument("--duration", type=float, default=180, help="a and e: the steady window, seconds")  # fmt: skip
    parser.add_argument("--settle", type=float, default=30, help="seconds after every replica is ready")  # fmt: skip
    parser.add_argument("--kills", type=int, default=100, help="d: kill -9s during escalations")
    parser.add_argument("--only", default="a,b,c,d,e", help="phases to run (a and e share a window)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="c: rounds of the 50 failures")
    parser.add_argument("--e-together", action="store_true", help="e: measure the single daemon in the fleet's window, not after it (both see the same machine)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR (new) and keep it: the daemons' logs, nginx's, the pages received")  # fmt: skip
    parser.add_argument("--report", type=Path, metavar="JSON", help="print the table of an earlier --json and exit")  # fmt: skip
    parser.add_argument("--receiver", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if args.receiver:
        receiver_main(int(args.receiver[0]), Path(args.receiver[1]))
        return 0
    phases = set(args.only.split(","))
    random.seed(args.seed)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
        "replicas": args.replicas, "checks": args.checks, "interval_s": args.interval,
    }  # fmt: skip
    lat_names = [f"lat{i:03d}" for i in range(LAT_CHECKS)]
    esc_names = [f"esc{i:03d}" for i in range(ESC_CHECKS)]
    # d's escalations last through the kills (3.5 s apart on average) and a margin.
    per_pass, repeat = escalation_steps(args.kills * 3.5 + 30 if "d" in phases else 30)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
    kept = contextlib.nullcontext(str(args.keep.resolve())) if args.keep else None
    with kept or tempfile.TemporaryDirectory(prefix="monitor-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's worker reads www/ as an unprivileged user
        nginx = Nginx(tmp / "nginx")
        nginx.base.mkdir()
        nginx.write(lat_names + esc_names)
        hook_port, pages = free_port(), tmp / "pages.jsonl"
        config = tmp / "monitors.yaml"
        write_config(config, nginx, hook_port, args.checks, args.interval, per_pass, repeat)
        with (
            started(nginx.argv(), stderr=subprocess.DEVNULL),
            started([sys.executable, __file__, "--receiver", str(hook_port), str(pages)]),
            postgres() as (dsn, pg_data),
        ):
            wait_http(nginx.url("/c/00000"))
            results["fleet"] = fleet(args, phases, tmp, config, dsn, pg_data, nginx, pages,
                                     per_pass, repeat, lat_names)  # fmt: skip
            if phases & {"c", "e"}:
                results["single"] = single(args, phases, tmp, nginx, hook_port, pages, lat_names,
                                           results["fleet"])  # fmt: skip
        del esc_names
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def fleet(args: argparse.Namespace, phases: set[str], tmp: Path, config: Path, dsn: str,
          pg_data: Path, nginx: Nginx, pages: Path, per_pass: int, repeat: int, lat_names: list[str]) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    replicas = [Replica(f"r{i + 1}", config, tmp, dsn) for i in range(args.replicas)]
    alone: Replica | None = None
    if "e" in phases and args.e_together:
        # One replica's share of the fleet's checks, of each kind (`share`), in its own
        # state directory.
        single_config = tmp / "single-e.yaml"
        out["single_mix"] = mix = share(args)
        write_config(single_config, nginx, free_port(), *mix[:2], 1, 0, *mix[2:])
        alone = Replica("single-e", single_config, tmp, "")
    try:
        for r in replicas:
            r.start()
        if alone is not None:
            alone.start()
        for r in [*replicas, *([alone] if alone else [])]:
            r.ready()
        print(
            f"fleet: {len(replicas)} replicas ready; settling {args.settle:g} s …", file=sys.stderr
        )
        time.sleep(args.settle)
        if phases & {"a", "e"}:
            print(f"a, e: steady window of {args.duration:g} s …", file=sys.stderr)
            procs = {r.name: r.pid for r in replicas}
            if alone is not None:
                procs[alone.name] = alone.pid
            pg0 = postgres_cpu(pg_data)
            t0, t1, cpu = cpu_window(procs, nginx, args.duration)
            out["postgres_cpu_s"] = postgres_cpu(pg_data) - pg0
            fleet_hits = [h for h in nginx.hits if h.agent != "fleet-bench/single-e"]
            out["a"] = runs_per_interval(fleet_hits, t0, t1, args.checks, args.interval)
            if alone is not None:
                out["single_e"] = cpu.pop(alone.name)
                alone.stop()  # not a load on the phases that follow
            out["e"] = cpu
            print(f"a: {json.dumps(out['a'])}\ne: {json.dumps(cpu)}", file=sys.stderr)
        if "c" in phases:
            print(f"c: {len(lat_names)} failures …", file=sys.stderr)
            out["c"] = latency(nginx, pages, lat_names, [r.log for r in replicas], args.rounds)
            print(f"c: {json.dumps(out['c'])}", file=sys.stderr)
        if "b" in phases:
            out["b"] = takeover(nginx, replicas, args.interval)
            print(f"b: {json.dumps(out['b'])}", file=sys.stderr)
        if "d" in phases:
            out["d"] = kills(nginx, pages, replicas, args.kills, per_pass, repeat)
            print(f"d: {json.dumps(out['d'])}", file=sys.stderr)
    finally:
        for r in [*replicas, *([alone] if alone else [])]:
            r.stop()
    return out


def single(args: argparse.Namespace, phases: set[str], tmp: Path, nginx: Nginx, hook_port: int,
           pages: Path, lat_names: list[str], fleet_out: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The single-process daemon on SQLite: for e, one replica's share of the fleet's
    checks of each kind (`share`); for c, that share of `/c/` checks and the `lat*` checks."""
    out: dict[str, Any] = {}
    mix = share(args)
    out["mix"] = fleet_out.get("single_mix", mix)
    if "single_e" in fleet_out:  # measured in the fleet's window (--e-together)
        out["e"], out["together"] = fleet_out["single_e"], True
    for phase in ("e", "c"):
        if phase not in phases or (phase == "e" and "e" in out):
            continue
        config = tmp / f"single-{phase}.yaml"
        if phase == "e":
            write_config(config, nginx, hook_port, *mix[:2], 1, 0, *mix[2:])
        else:
            write_config(config, nginx, hook_port, mix[0], args.interval, 1, 0)
        checks = mix[0] + (mix[2] + mix[3] if phase == "e" else LAT_CHECKS + ESC_CHECKS)
        daemon = Replica(f"single-{phase}", config, tmp, "")
        try:
            daemon.start()
            daemon.ready()
            print(f"single {phase}: ready with {checks} checks; settling {args.settle:g} s …",
                  file=sys.stderr)  # fmt: skip
            time.sleep(args.settle)
            if phase == "e":
                _, _, cpu = cpu_window({daemon.name: daemon.pid}, nginx, args.duration)
                out["e"] = cpu[daemon.name]
            else:
                out["c"] = latency(nginx, pages, lat_names, [daemon.log], args.rounds)
            print(f"single {phase}: {json.dumps(out[phase])}", file=sys.stderr)
        finally:
            daemon.stop()
    return out


def report(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = [("measure", "result", "target", "verdict")]
    f, s = r.get("fleet", {}), r.get("single", {})
    if a := f.get("a"):
        rows += [
            (f"a. runs per check per interval ({r['checks']:,} checks at {r['interval_s']} s, "
             f"{a['window_s']:.0f} s window)",
             f"{a['runs_per_check_per_interval']:.2f} (per check {a['per_check_min']:.2f} to "
             f"{a['per_check_max']:.2f}; {a['checks_never_run']} never run)", "1.00",
             ok(abs(a["runs_per_check_per_interval"] - 1) < 0.005)),
            ("a. duplicate runs in the window", f"{a['duplicates']:,} of {a['runs']:,} "
             f"({100 * a['duplicate_share']:.2f} %)", "<= 0.1 %", ok(a["duplicate_share"] <= 0.001)),
        ]  # fmt: skip
    if b := f.get("b"):
        rows.append((f"b. kill -9 of {b['victim']}: its {b['its_checks']:,} checks run again "
                     f"({b['ran_again']:,} did)",
                     f"p99 {b['p99_s']:.1f} s (p50 {b['p50_s']:.1f}, max {b['max_s']:.1f}); "
                     f"later than their schedule by p99 {b['late_p99_s']:.1f} s, max {b['late_max_s']:.1f}; "
                     f"{b['duplicates_after']} duplicate runs of {b['runs_after']:,} after the kill",
                     "p99 <= 10 s", ok(b["p99_s"] <= 10 and b["ran_again"] == b["its_checks"])))  # fmt: skip
    for label, c, target in (("fleet on PostgreSQL", f.get("c"), 50), ("single daemon on SQLite", s.get("c"), 10)):  # fmt: skip
        if c:
            rows.append((f"c. failure → page, {label} ({c['measured']}/{c['incidents']})",
                         f"p99 {c['p99_ms']:.1f} ms (p50 {c['p50_ms']:.1f}, max {c['max_ms']:.1f}, "
                         f"{c.get('over_50_ms', '?')} over 50 ms); "
                         f"to the incident p50 {c['to_open_p50_ms']:.1f}, p99 {c['to_open_p99_ms']:.1f}; "
                         f"incident to page p50 {c['open_to_page_p50_ms']:.1f}, p99 {c['open_to_page_p99_ms']:.1f}",
                         f"<= {target} ms", ok(c["p99_ms"] <= target and c["measured"] == c["incidents"])))  # fmt: skip
    if d := f.get("d"):
        rows += [
            (f"d. {d['kills']} kill -9s during {d['escalations']} escalations: pages lost",
             f"{d['lost']} of {d['expected_pages']:,} expected ({d['received_pages']:,} received)",
             "0", ok(d["lost"] == 0)),
            ("d. duplicates with different idempotency keys", f"{d['duplicates_different_keys']} "
             f"({d['duplicates_same_key']} repeats with the same key; "
             f"{d['checks_with_more_than_one_incident']} checks with a second incident)",
             "0", ok(d["duplicates_different_keys"] == 0)),
            ("d. lateness of escalation posts", f"p99 {d['lateness_p99_s']:.2f} s, "
             f"max {d['lateness_max_s']:.2f} s", "", ""),
        ]  # fmt: skip
    if e := f.get("e"):
        values = [v["ms_per_probe"] for v in e.values()]
        for name, v in e.items():
            rows.append((f"e. CPU per probe, replica {name}", f"{v['ms_per_probe']:.3f} ms "
                         f"({v['probes_per_s']:.0f} probes/s, {v['cpu_s']:.1f} CPU-s)", "", ""))  # fmt: skip
        probes = sum(v["probes"] for v in e.values())
        if probes and (pg := f.get("postgres_cpu_s")) is not None:
            rows.append(("e. PostgreSQL, same window", f"{pg:.2f} CPU-s "
                         f"({1000 * pg / probes:.3f} ms per probe of the fleet)", "", ""))  # fmt: skip
        if se := s.get("e"):
            when = "same window" if s.get("together") else "after the fleet"
            c, interval, lat, esc = s["mix"]
            rows.append((f"e. CPU per probe, single daemon on SQLite ({c:,} checks at {interval} s and {lat + esc} at 1 s, {when})",
                         f"{se['ms_per_probe']:.3f} ms ({se['probes_per_s']:.0f} probes/s, "
                         f"{se['cpu_s']:.1f} CPU-s)", "", ""))  # fmt: skip
            ratio = statistics.mean(values) / se["ms_per_probe"]
            rows.append(("e. replica (mean) / single daemon", f"{ratio:.2f}x", "<= 1.15x", ok(ratio <= 1.15)))  # fmt: skip
            # The same difference as a share of a core: what being one of a fleet costs a
            # replica whatever its load (beats, the lease, listening, recording runs).
            share = [
                v["cpu_s"] / (v["probes"] / v["probes_per_s"]) for v in e.values() if v["probes"]
            ]
            single_share = (
                se["cpu_s"] / (se["probes"] / se["probes_per_s"]) if se["probes"] else float("nan")
            )
            if share:
                rows.append(("e. replica (mean) minus single daemon, share of a core",
                             f"{100 * (statistics.mean(share) - single_share):+.1f} % "
                             f"({100 * statistics.mean(share):.1f} % against {100 * single_share:.1f} %)", "", ""))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = [f"fleet benchmark, {r['date']}, commit {r['commit']}, {r['replicas']} replicas", ""]
    for i, row in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(row)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def ok(passed: bool) -> str:
    return "met" if passed else "NOT met"


if __name__ == "__main__":
    raise SystemExit(main())
