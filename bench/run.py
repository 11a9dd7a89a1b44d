"""Benchmarks of the monitor daemon against a local nginx, blackbox_exporter and a bare loop.

    python3 bench/run.py [--quick] [--only cpu,latency,startup,scale,profile] [--json FILE]
                         [--baseline DIR] [--saturation]

Everything runs on 127.0.0.1: a private nginx (2 KB page, its own config and prefix in a
temporary directory), prometheus-blackbox-exporter (module http_2xx), the daemon itself
(`python3 -m monitor run`) and a webhook receiver in this process. Debian packages are
installed when missing. Every server is started and stopped here, by PID, and every
phase is bounded in time. CPU and memory come from /proc/<pid>/stat and /status of the
measured process only; probe counts come from nginx's access log, so the three probers
are counted the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = ("<!doctype html><html><head><title>Wing</title></head><body>" + "Wing " * 380)[:2040]
PAGE += "</body></html>\n"


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def ensure_packages(phases: set[str] | None = None) -> None:
    missing = [
        pkg
        for binary, pkg in (("nginx", "nginx-light"), ("prometheus-blackbox-exporter", "prometheus-blackbox-exporter"))
        if shutil.which(binary) is None
    ]  # fmt: skip
    wheels = [
        pkg for module, pkg in (("uvloop", "uvloop"), ("prometheus_client", "prometheus-client"))
        if importlib.util.find_spec(module) is None
    ] + ([] if shutil.which("py-spy") or "profile" not in (phases or {"profile"}) else ["py-spy"])  # fmt: skip
    if wheels:
        print(f"installing {' '.join(wheels)} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *wheels], check=True)
    if not missing:
        return
    print(f"installing {' '.join(missing)} …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                          check=False, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    if done.returncode != 0 or shutil.which("nginx") is None:
        if shutil.which("nginx") is None:
            raise SystemExit("nginx is missing and could not be installed")
        print(f"could not install {' '.join(missing)}; the probers that need it are skipped",
              file=sys.stderr)  # fmt: skip


@contextlib.contextmanager
def started(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped (TERM, then KILL) by its PID when the block ends."""
    proc = subprocess.Popen(argv, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(url: str, timeout: float = 30.0, interval: float = 0.005) -> float:
    """Seconds until `url` answers 200 (polled); raises after `timeout`."""
    import urllib.error
    import urllib.request

    start = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310  127.0.0.1 only
                if resp.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{url} not ready after {timeout}s")
        time.sleep(interval)


def fetch_metrics(port: int) -> tuple[str, float, int]:
    """The daemon's /metrics text, the seconds the HTTP fetch took, and its size in bytes."""
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
        raw = resp.read()
    return raw.decode(), time.perf_counter() - start, len(raw)


def summed_samples(text: str) -> dict[str, float]:
    """Summed samples of a /metrics text, by sample name plus `le` for buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + (f"|{s.labels['le']}" if "le" in s.labels else "")
            sums[key] = sums.get(key, 0.0) + s.value
    return sums


# --- the target --------------------------------------------------------------------------


@dataclass
class Nginx:
    """A private nginx on 127.0.0.1 serving a 2 KB page and /flip/N.html files."""

    base: Path
    port: int = field(default_factory=free_port)

    @property
    def log(self) -> Path:
        return self.base / "access.log"

    def url(self, path: str = "/index.html") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def write(self, flips: int = 0) -> None:
        www = self.base / "www"
        (www / "flip").mkdir(parents=True, exist_ok=True)
        (www / "index.html").write_text(PAGE)
        for i in range(flips):
            (www / "flip" / f"{i}.html").write_text(PAGE)
        for tmp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.base / tmp).mkdir(exist_ok=True)
        b = self.base
        (b / "nginx.conf").write_text(f"""
worker_processes 1;
pid {b}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 8192; }}
http {{
  log_format ts '$msec';
  access_log {self.log} ts;
  client_body_temp_path {b}/body; proxy_temp_path {b}/proxy; fastcgi_temp_path {b}/fastcgi;
  uwsgi_temp_path {b}/uwsgi; scgi_temp_path {b}/scgi;
  default_type text/html;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    root {www};
    location / {{ try_files $uri =503; }}
  }}
}}
""")

    def argv(self) -> list[str]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(self.base), "-c", str(self.base / "nginx.conf"), "-e", "stderr",
                "-g", "daemon off;"]  # fmt: skip

    def requests(self) -> int:
        """Requests served so far (lines of the access log)."""
        try:
            with self.log.open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0


# --- the daemon --------------------------------------------------------------------------


def daemon_config(path: Path, port: int, state: Path, checks: list[str], *, interval: str,
                  extra: str = "", failure_threshold: int = 2, phases: str = "per_kind") -> None:  # fmt: skip
    lines = [
        f"defaults: {{interval: {interval}, timeout: 2s, failure_threshold: {failure_threshold}, success_threshold: 1}}",
        f'daemon: {{listen: "127.0.0.1:{port}", state_dir: "{state}", shutdown_grace: 2s, '
        f"phase_histograms: {phases}}}",
        "limits: {max_concurrency: 512, max_per_host: 64}",
        "checks:",
        *(f'  - {{name: c{i:05d}, kind: http, url: "{url}"}}' for i, url in enumerate(checks)),
        extra,
    ]
    path.write_text("\n".join(lines) + "\n")


def daemon_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "monitor", "run", "-c", str(config), "--log-format", "json",
            "--log-level", "info"]  # fmt: skip


def daemon_env(loop: str, code: Path | None = None) -> dict[str, str]:
    """The daemon's environment; `code`: a checkout whose `monitor` package runs instead."""
    env = {**os.environ, "MONITOR_EVENT_LOOP": loop}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


# --- 1. CPU per probe --------------------------------------------------------------------


@dataclass
class Window:
    cpu_s: float
    probes: int

    @property
    def ms_per_probe(self) -> float:
        return 1000 * self.cpu_s / self.probes if self.probes else float("nan")


def measure_window(pid: int, nginx: Nginx, seconds: float) -> Window:
    cpu0, n0 = cpu_seconds(pid), nginx.requests()
    time.sleep(seconds)
    cpu1, n1 = cpu_seconds(pid), nginx.requests()
    return Window(cpu1 - cpu0, n1 - n0)


def cpu_daemon(nginx: Nginx, tmp: Path, rate: int, seconds: float, loop: str,
               code: Path | None = None) -> Window:  # fmt: skip
    port = free_port()
    config = tmp / f"cpu-{loop}.yaml"
    state = tmp / f"state-cpu-{loop}-{rate}-{'baseline' if code else 'this'}"
    daemon_config(config, port, state, [nginx.url()] * rate, interval="1s")
    env = daemon_env(loop, code)
    with started(daemon_argv(config), stdout=subprocess.DEVNULL, env=env) as proc:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(3)  # every check has run a few times: steady state
        return measure_window(proc.pid, nginx, seconds)


def cpu_bare(nginx: Nginx, rate: int, seconds: float, uvloop: bool, raw: bool = False) -> Window:
    argv = [sys.executable, str(ROOT / "bench" / "bare_loop.py"), nginx.url(), "--rate", str(rate),
            "--seconds", str(seconds), *(["--uvloop"] if uvloop else []),
            *(["--raw"] if raw else [])]  # fmt: skip
    n0 = nginx.requests()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    doc = json.loads(out.stdout)
    return Window(doc["cpu_s"], nginx.requests() - n0)


def cpu_blackbox(nginx: Nginx, tmp: Path, rate: int, seconds: float) -> Window:
    port = free_port()
    config = tmp / "blackbox.yml"
    config.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n"
                      "    http:\n      preferred_ip_protocol: ip4\n")  # fmt: skip
    argv = [shutil.which("prometheus-blackbox-exporter") or "prometheus-blackbox-exporter",
            f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with started(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        probe = f"http://127.0.0.1:{port}/probe?module=http_2xx&target={nginx.url()}"

        async def drive(total: float) -> None:
            # Prometheus's part: one /probe scrape per probe, at a fixed rate.
            async with aiohttp.ClientSession() as session:
                loop = asyncio.get_running_loop()
                tasks = []

                async def one() -> None:
                    async with session.get(probe) as resp:
                        await resp.read()

                start = loop.time()
                for i in range(int(rate * total)):
                    delay = start + i / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one()))
                await asyncio.gather(*tasks)

        asyncio.run(drive(2))  # warm-up
        cpu0, n0 = cpu_seconds(proc.pid), nginx.requests()
        asyncio.run(drive(seconds))
        return Window(cpu_seconds(proc.pid) - cpu0, nginx.requests() - n0)


def cpu_rounds(nginx: Nginx, tmp: Path, rate: int, window: float, rounds: int,
               baseline: Path | None = None, saturation: int = 0,
               only: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Every prober in turn, `rounds` times over; per prober the median of its rounds.

    Alternating the probers spreads slow drifts of the machine (other tenants, thermal,
    page cache) over all of them instead of charging them to whichever ran last.
    `baseline`: another checkout whose daemon takes its turn beside this one's.
    `saturation`: also the daemon with this many checks at 1 s on uvloop, beside the bare
    aiohttp loop and the raw-protocol floor offered the same rate.
    """
    probers: dict[str, Any] = {
        "daemon_asyncio": lambda: cpu_daemon(nginx, tmp, rate, window, "asyncio"),
        "bare_asyncio": lambda: cpu_bare(nginx, rate, window, uvloop=False),
        "raw_asyncio": lambda: cpu_bare(nginx, rate, window, uvloop=False, raw=True),
    }
    if baseline is not None:
        probers["daemon_asyncio_baseline"] = lambda: cpu_daemon(
            nginx, tmp, rate, window, "asyncio", baseline
        )
    if shutil.which("prometheus-blackbox-exporter"):
        probers["blackbox"] = lambda: cpu_blackbox(nginx, tmp, rate, window)
    else:
        print("cpu: prometheus-blackbox-exporter is not installed; skipped", file=sys.stderr)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("cpu: uvloop is not installed; asyncio only", file=sys.stderr)
    else:
        probers["daemon_uvloop"] = lambda: cpu_daemon(nginx, tmp, rate, window, "uvloop")
        if baseline is not None:
            probers["daemon_uvloop_baseline"] = lambda: cpu_daemon(
                nginx, tmp, rate, window, "uvloop", baseline
            )
        probers["bare_uvloop"] = lambda: cpu_bare(nginx, rate, window, uvloop=True)
        probers["raw_uvloop"] = lambda: cpu_bare(nginx, rate, window, uvloop=True, raw=True)
        if saturation:
            n = saturation
            probers["sat_daemon_uvloop"] = lambda: cpu_daemon(nginx, tmp, n, window, "uvloop")
            if baseline is not None:
                probers["sat_daemon_uvloop_baseline"] = lambda: cpu_daemon(
                    nginx, tmp, n, window, "uvloop", baseline
                )
            probers["sat_bare_uvloop"] = lambda: cpu_bare(nginx, n, window, uvloop=True)
            probers["sat_raw_uvloop"] = lambda: cpu_bare(nginx, n, window, uvloop=True, raw=True)
    if only:
        probers = {name: m for name, m in probers.items() if name.startswith(only)}
    runs: dict[str, list[Window]] = {name: [] for name in probers}
    for i in range(rounds):
        for name, measure in probers.items():
            print(
                f"cpu: round {i + 1}/{rounds}, {name}: {saturation if name.startswith('sat_') else rate} probes/s for {window:g}s …",
                file=sys.stderr,
            )
            runs[name].append(measure())
    return {
        name: {
            "ms_per_probe": statistics.median(w.ms_per_probe for w in ws),
            "rounds_ms": [round(w.ms_per_probe, 4) for w in ws],
            "probes": sum(w.probes for w in ws),
            "probes_per_s": sum(w.probes for w in ws) / (window * len(ws)),
        }
        for name, ws in runs.items()
    }


# --- 2. page latency ---------------------------------------------------------------------


async def page_latency(nginx: Nginx, tmp: Path, incidents: int, loop: str) -> dict[str, Any]:
    received: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        check = (body.get("incident") or {}).get("check")
        if body.get("event") == "trigger" and check and check not in received:
            received[check] = at
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    port = free_port()
    config = tmp / "latency.yaml"
    extra = f"""
severity:
  - {{match: {{}}, severity: P1}}
notifiers:
  hook: {{type: webhook, url: "http://127.0.0.1:{hook_port}/hook"}}
escalation:
  channel: hook
  policies: {{default: {{steps: [{{post: hook}}]}}}}
"""
    urls = [nginx.url(f"/flip/{i}.html") for i in range(incidents)]
    daemon_config(config, port, tmp / "state-latency", urls, interval="1s", extra=extra,
                  failure_threshold=1)  # fmt: skip
    down_at: dict[str, float] = {}
    proc = await asyncio.create_subprocess_exec(*daemon_argv(config), stdout=asyncio.subprocess.PIPE,
                                                env=daemon_env(loop))  # fmt: skip
    assert proc.stdout is not None

    async def read_logs() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("event") == "check_down":
                ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                down_at[event["check"]] = ts.replace(tzinfo=ts.tzinfo or UTC).timestamp()

    reader = asyncio.create_task(read_logs())
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/readyz")
        await asyncio.sleep(3)
        # One asset breaks every 50 ms: independent incidents, not one burst.
        for i in range(incidents):
            (nginx.base / "www" / "flip" / f"{i}.html").unlink()
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(received) < incidents and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await runner.cleanup()
    latencies = sorted(1000 * (received[c] - down_at[c]) for c in received if c in down_at)
    return {
        "incidents": incidents,
        "measured": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": _quantile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))  # nearest rank
    return sorted(values)[index]


# --- 3. start-up with 1,000 open incidents -----------------------------------------------


def seed_incidents(state: Path, names: list[str]) -> None:
    """Open incidents written through the project's own store, as the daemon writes them."""
    sys.path.insert(0, str(ROOT))
    from monitor.core.model import Incident, IncidentStatus, Severity, TimelineEntry
    from monitor.store.sqlite import SqliteStore, default_state_path

    async def write() -> None:
        state.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(default_state_path(str(state)))
        await store.open()
        now = datetime.now(UTC)
        for name in names:
            incident = Incident(id=0, key=name, title=f"{name} is down", status=IncidentStatus.TRIGGERED,
                                severity=Severity.P2, opened_at=now, updated_at=now, check=name,
                                rule="seed", failure="http_status", message="expected status 2xx, got 503")  # fmt: skip
            entry = TimelineEntry(0, now, "opened", "monitor", "P2 by rule seed")
            await store.create_incident(incident, [entry])
        await store.close()

    asyncio.run(write())


def startup(nginx: Nginx, tmp: Path, checks: int, incidents: int, loop: str) -> dict[str, float]:
    port = free_port()
    state = tmp / f"state-startup-{incidents}"
    names = [f"c{i:05d}" for i in range(checks)]
    if incidents:
        seed_incidents(state, names[:incidents])
    config = tmp / f"startup-{incidents}.yaml"
    extra = 'escalation:\n  channel: quiet\nnotifiers:\n  quiet: {type: webhook, url: "http://127.0.0.1:9/"}\n'
    daemon_config(config, port, state, [nginx.url()] * checks, interval="30s", extra=extra)
    t0 = time.perf_counter()
    with started(daemon_argv(config), stdout=subprocess.DEVNULL, env=daemon_env(loop)):
        ready = wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, interval=0.002)
        elapsed = time.perf_counter() - t0
    del ready
    return {"checks": checks, "incidents": incidents, "ready_s": elapsed}


# --- 4. scale: 10,000 checks at 30 s -----------------------------------------------------


def scale(nginx: Nginx, tmp: Path, checks: int, seconds: float, loop: str) -> dict[str, Any]:
    baseline = _baseline_rss(nginx, tmp, loop)
    port = free_port()
    config = tmp / "scale.yaml"
    daemon_config(config, port, tmp / "state-scale", [nginx.url()] * checks, interval="30s")
    with started(daemon_argv(config), stdout=subprocess.DEVNULL, env=daemon_env(loop)) as proc:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        start = time.monotonic()
        rss_max = 0
        idle_from = start + max(0.0, seconds - 60)  # the last minute: steady, all healthy
        idle: tuple[float, int] | None = None
        while (now := time.monotonic()) < start + seconds:
            rss_max = max(rss_max, rss_bytes(proc.pid))
            if idle is None and now >= idle_from:
                idle = (cpu_seconds(proc.pid), nginx.requests())
                idle_t = now
            time.sleep(1)
        assert idle is not None
        idle_cpu = cpu_seconds(proc.pid) - idle[0]
        idle_probes = nginx.requests() - idle[1]
        idle_span = time.monotonic() - idle_t
        rss_end = rss_bytes(proc.pid)
        text, scrape_s, scrape_bytes = fetch_metrics(port)
        scrape_cpu0 = cpu_seconds(proc.pid)
        _, scrape2_s, _ = fetch_metrics(port)
        scrape_cpu = cpu_seconds(proc.pid) - scrape_cpu0
        # The same daemon after a reload with `daemon.phase_histograms: false`.
        daemon_config(config, port, tmp / "state-scale", [nginx.url()] * checks, interval="30s",
                      phases="false")  # fmt: skip
        proc.send_signal(signal.SIGHUP)
        small_s, small_bytes = float("nan"), 0
        for _ in range(20):
            time.sleep(1)
            small, small_s, small_bytes = fetch_metrics(port)
            if "monitor_http_phase_seconds_bucket{" not in small:
                break
    metrics = summed_samples(text)
    lag_count = metrics.get("monitor_scheduler_lag_seconds_count", 0.0)
    buckets = sorted(
        (float(k.split("|")[1]), v) for k, v in metrics.items()
        if k.startswith("monitor_scheduler_lag_seconds_bucket|") and k.split("|")[1] != "+Inf"
    )  # fmt: skip
    under_5ms = next((v for le, v in buckets if le == 0.005), 0.0)
    p99_bound = next((le for le, v in buckets if lag_count and v / lag_count >= 0.99), float("inf"))
    return {
        "checks": checks,
        "seconds": seconds,
        "runs": metrics.get("monitor_check_runs_total", 0.0),
        "lag_observations": lag_count,
        "lag_share_under_5ms": under_5ms / lag_count if lag_count else float("nan"),
        "lag_p99_le_s": p99_bound,
        "skipped_ticks": metrics.get("monitor_scheduler_skipped_ticks_total", 0.0),
        "rss_max_mb": rss_max / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "baseline_rss_mb": baseline / 2**20,
        "bytes_per_check": (rss_end - baseline) / checks,
        "idle_cpu_pct": 100 * idle_cpu / idle_span,
        "idle_probes_per_s": idle_probes / idle_span,
        "idle_ms_per_probe": 1000 * idle_cpu / idle_probes if idle_probes else float("nan"),
        "scrape_s": min(scrape_s, scrape2_s),
        "scrape_cpu_s": scrape_cpu,
        "scrape_mb": scrape_bytes / 2**20,
        "scrape_no_phases_s": small_s,
        "scrape_no_phases_mb": small_bytes / 2**20,
    }


def _baseline_rss(nginx: Nginx, tmp: Path, loop: str) -> int:
    port = free_port()
    config = tmp / "baseline.yaml"
    daemon_config(config, port, tmp / "state-baseline", [nginx.url()], interval="30s")
    with started(daemon_argv(config), stdout=subprocess.DEVNULL, env=daemon_env(loop)) as proc:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(3)
        return rss_bytes(proc.pid)


# --- 5. profile --------------------------------------------------------------------------


def profile(
    nginx: Nginx, tmp: Path, rate: int, seconds: float, loop: str
) -> dict[str, list[tuple[str, float]]]:
    """py-spy on the daemon under the CPU benchmark's load: own time by function."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return {}
    port = free_port()
    config = tmp / "profile.yaml"
    daemon_config(config, port, tmp / "state-profile", [nginx.url()] * rate, interval="1s")
    raw = tmp / "profile.txt"
    with started(daemon_argv(config), stdout=subprocess.DEVNULL, env=daemon_env(loop)) as proc:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(2)
        subprocess.run([py_spy, "record", "--pid", str(proc.pid), "--duration", str(int(seconds)),
                        "--rate", "250", "--format", "raw", "--output", str(raw), "--nonblocking"],
                       check=True, capture_output=True, timeout=seconds + 60)  # fmt: skip
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    top = sorted(own.items(), key=lambda kv: -kv[1])[:25]
    ours = sorted(((f, n) for f, n in inclusive.items() if "monitor/" in f), key=lambda kv: -kv[1])
    return {
        "own": [(name, 100 * n / total) for name, n in top],
        "inclusive_monitor": [(name, 100 * n / total) for name, n in ours[:25]],
    }


def _frame(text: str) -> str:
    """`Class.method (path/to/file.py:123)` → `Class.method (to/file.py)`."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


# --- the run -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (about 4 minutes)")
    parser.add_argument("--only", default="cpu,latency,startup,scale,profile")
    parser.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="the daemon's event loop (MONITOR_EVENT_LOOP)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--baseline", type=Path, help="cpu: a checkout whose daemon runs beside this one's"
    )
    parser.add_argument(
        "--saturation",
        type=int,
        default=0,
        metavar="N",
        help="cpu: also the daemon with N checks at 1 s, beside the bare loops at N/s",
    )
    parser.add_argument("--rounds", type=int, help="cpu: rounds (default 3, 1 with --quick)")
    parser.add_argument("--probers", help="cpu: only probers whose names start so, comma-separated")  # fmt: skip
    args = parser.parse_args()
    phases = set(args.only.split(","))
    ensure_packages(phases)
    quick = args.quick
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "cores": os.cpu_count(), "python": sys.version.split()[0], "loop": args.loop}  # fmt: skip
    rate, window = 200, (10.0 if quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers run as an unprivileged user and read www/ here
        nginx = Nginx(tmp / "nginx")
        nginx.base.mkdir()
        nginx.write(flips=200)
        with started(nginx.argv(), stderr=subprocess.DEVNULL):
            wait_http(nginx.url())
            if "cpu" in phases:
                rounds = args.rounds or (1 if quick else 3)
                only = tuple(args.probers.split(",")) if args.probers else ()
                results["cpu"] = cpu_rounds(nginx, tmp, rate, window, rounds,
                                            args.baseline, args.saturation, only)  # fmt: skip
            if "latency" in phases:
                print("page latency: 200 incidents …", file=sys.stderr)
                results["latency"] = asyncio.run(page_latency(nginx, tmp, 200, args.loop))
                nginx.write(flips=200)  # put the pages back
            if "startup" in phases:
                print("start-up: 10,000 checks, 0 and 1,000 open incidents …", file=sys.stderr)
                results["startup"] = [startup(nginx, tmp, 10_000, n, args.loop) for n in (0, 1000)]
            if "scale" in phases:
                seconds = 60.0 if quick else 150.0
                print(f"scale: 10,000 checks at 30s for {seconds:g}s …", file=sys.stderr)
                results["scale"] = scale(nginx, tmp, 10_000, seconds, args.loop)
            if "profile" in phases:
                print("profile: py-spy on the daemon …", file=sys.stderr)
                # asyncio's loop: uvloop runs in C, where py-spy sees no frames.
                results["profile"] = profile(nginx, tmp, rate, 8.0 if quick else 15.0, "asyncio")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any]) -> str:
    out = [
        f"monitor benchmarks, {r['date']}, {r['cores']} cores, Python {r['python']}, loop {r['loop']}",
        "",
    ]
    rows: list[tuple[str, str, str, str]] = [("measure", "result", "target", "verdict")]
    if cpu := r.get("cpu"):
        labels = {
            "daemon_uvloop": "CPU per probe: daemon on uvloop",
            "daemon_asyncio": "CPU per probe: daemon on asyncio",
            "bare_uvloop": "CPU per probe: bare aiohttp loop on uvloop",
            "bare_asyncio": "CPU per probe: bare aiohttp loop on asyncio",
            "raw_uvloop": "CPU per probe: raw protocol, no HTTP library, on uvloop",
            "raw_asyncio": "CPU per probe: raw protocol, no HTTP library, on asyncio",
            "blackbox": "CPU per probe: blackbox_exporter",
            "daemon_uvloop_baseline": "CPU per probe: baseline daemon on uvloop",
            "daemon_asyncio_baseline": "CPU per probe: baseline daemon on asyncio",
        }
        for key, label in labels.items():
            if key in cpu:
                c = cpu[key]
                spread = ", ".join(f"{v:.3f}" for v in c["rounds_ms"])
                rows.append((label, f"{c['ms_per_probe']:.3f} ms (rounds: {spread})", "", ""))
        for key, label in {
            "sat_daemon_uvloop": "saturation, uvloop: daemon",
            "sat_daemon_uvloop_baseline": "saturation, uvloop: baseline daemon",
            "sat_bare_uvloop": "saturation, uvloop: bare aiohttp loop",
            "sat_raw_uvloop": "saturation, uvloop: raw protocol",
        }.items():
            if key in cpu:
                c = cpu[key]
                spread = ", ".join(f"{v:.3f}" for v in c["rounds_ms"])
                rows.append((label, f"{c['ms_per_probe']:.3f} ms at {c['probes_per_s']:.0f} probes/s "
                             f"(rounds: {spread})", "", ""))  # fmt: skip
        for loop in ("uvloop", "asyncio"):
            if f"daemon_{loop}_baseline" in cpu:
                d = cpu[f"daemon_{loop}"]["ms_per_probe"]
                b = cpu[f"daemon_{loop}_baseline"]["ms_per_probe"]
                rows.append((f"daemon on {loop} / baseline daemon on {loop}", f"{d / b:.2f}x",
                             "<= 1.05x", _ok(d / b <= 1.05)))  # fmt: skip
        bb = cpu["blackbox"]["ms_per_probe"] if "blackbox" in cpu else float("nan")
        for loop in ("uvloop", "asyncio"):
            if f"daemon_{loop}" not in cpu or f"bare_{loop}" not in cpu:
                continue
            d, b = cpu[f"daemon_{loop}"]["ms_per_probe"], cpu[f"bare_{loop}"]["ms_per_probe"]
            rows += [
                (
                    f"daemon on {loop} / blackbox_exporter",
                    f"{d / bb:.2f}x",
                    "<= 0.40x",
                    _ok(d / bb <= 0.40),
                ),
                (
                    f"daemon on {loop} / bare loop on {loop}",
                    f"{d / b:.2f}x",
                    "<= 1.05x",
                    _ok(d / b <= 1.05),
                ),
            ]
    if lat := r.get("latency"):
        rows.append((f"page latency p99 ({lat['measured']}/{lat['incidents']} incidents)",
                     f"{lat['p99_ms']:.1f} ms (p50 {lat['p50_ms']:.1f}, max {lat['max_ms']:.1f})",
                     "<= 50 ms", _ok(lat["p99_ms"] <= 50 and lat["measured"] == lat["incidents"])))  # fmt: skip
    for s in r.get("startup", []):
        target = "<= 2 s" if s["incidents"] else ""
        rows.append((f"start-up to /readyz: {s['checks']:,} checks, {s['incidents']:,} incidents",
                     f"{s['ready_s']:.2f} s", target, _ok(s["ready_s"] <= 2) if target else ""))  # fmt: skip
    if sc := r.get("scale"):
        rows += [
            (f"scale: runs in {sc['seconds']:g}s", f"{sc['runs']:,.0f}", "", ""),
            ("scale: scheduler lag p99", f"<= {sc['lag_p99_le_s'] * 1000:g} ms "
             f"({100 * sc['lag_share_under_5ms']:.2f}% under 5 ms)", "<= 5 ms", _ok(sc["lag_p99_le_s"] <= 0.005)),
            ("scale: skipped ticks", f"{sc['skipped_ticks']:.0f}", "0", _ok(sc["skipped_ticks"] == 0)),
            ("scale: RSS (max)", f"{sc['rss_max_mb']:.0f} MB", "<= 200 MB", _ok(sc["rss_max_mb"] <= 200)),
            ("memory per check", f"{sc['bytes_per_check'] / 1024:.1f} KiB (baseline {sc['baseline_rss_mb']:.0f} MB)", "", ""),
            ("CPU at idle, 10,000 healthy checks", f"{sc['idle_cpu_pct']:.1f}% of a core "
             f"({sc['idle_probes_per_s']:.0f} probes/s, {sc['idle_ms_per_probe']:.3f} ms each)", "", ""),
            ("/metrics scrape at 10,000 checks", f"{sc['scrape_s']:.2f} s, {sc['scrape_mb']:.1f} MB "
             f"({sc['scrape_cpu_s']:.2f} CPU-s in the daemon)", "", ""),
            ("/metrics scrape, phase_histograms: false", f"{sc['scrape_no_phases_s']:.2f} s, "
             f"{sc['scrape_no_phases_mb']:.1f} MB", "", ""),
        ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for i, row in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(row)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if prof := r.get("profile"):
        out += [
            "",
            "profile (py-spy; share of samples; asyncio's loop, so Python frames are visible):",
            "own time:",
        ]
        out += [f"  {pct:5.1f}%  {name}" for name, pct in prof["own"][:15]]
        out += ["inclusive, the monitor's own functions:"]
        out += [f"  {pct:5.1f}%  {name}" for name, pct in prof["inclusive_monitor"][:15]]
    return "\n".join(out)


def _ok(passed: bool) -> str:
    return "met" if passed else "NOT met"


if __name__ == "__main__":
    raise SystemExit(main())
