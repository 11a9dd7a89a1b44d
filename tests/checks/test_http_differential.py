"""The probe client against curl, on real servers: httpbin (gunicorn-free, through
pytest-httpbin's wsgiref server) and nginx (static files, gzip, gzip_static, chunked
proxying, every 3xx, large headers), both started here on 127.0.0.1.

Every endpoint is fetched by the monitor's client and by
`curl --http1.1 -L --compressed`, with the same request headers; both must agree on the
final status, the final URL, the number of redirects and the SHA-256 of the decoded
body. Where they differ on purpose, the difference is listed in `EXCEPTIONS` and tested
as such:

- `max_redirects`: the monitor stops when the chain reaches `max_redirects` hops, so
  with 10 it follows at most 9; curl's `--max-redirs 10` follows 10.
- 300 Multiple Choices: curl follows its Location; the monitor follows 301, 302, 303,
  307 and 308 only, and reports the 300.
- The head limit: the monitor refuses a response head over 64 KiB (a `protocol`
  failure); curl accepts up to 100 KiB.
- A gzip body of several members (RFC 1952, section 2.2; nginx `gzip_static` serves
  such files): the monitor decodes every member; curl 7.88 stops after the first one
  with exit code 23.

nginx and curl come from Debian (`.ci/run` installs them); without them the module
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from monitor.checks.http.httpclient import PhaseTimer
from monitor.checks.http.probe import ACCEPT_ENCODING, ProbeError, Prober
from monitor.core.model import FailureKind

HEADERS = {
    "User-Agent": "differential/1",
    "Accept": "*/*",
    "Accept-Encoding": ACCEPT_ENCODING,
    "Connection": "close",
}
MAX_REDIRECTS = 10
MAX_BODY = 8 * 1024 * 1024


def need(tool: str) -> str:
    path = shutil.which(tool) or (
        f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None
    )
    if path is None:
        message = f"{tool} is not installed (Debian package {tool}; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Seen:
    status: int | None
    url: str
    redirects: int
    digest: str
    failure: str | None = None


# --- nginx -------------------------------------------------------------------------------

PAGE = (
    "<!doctype html><html><body>" + "Wing, the cloud-oriented language. " * 60
) + "</body></html>\n"


def nginx_site(base: Path, port: int, upstream: str) -> Path:
    www = base / "www"
    www.mkdir(parents=True)
    (www / "index.html").write_text(PAGE)
    (www / "page.html").write_text(PAGE * 4)
    (www / "data.json").write_text(
        '{"name": "wing", "versions": [' + ", ".join(map(str, range(400))) + "]}\n"
    )
    (www / "unicode.txt").write_text("Wing ✓ — 翼 — крыло\n" * 50, encoding="utf-8")
    blob = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(1600))
    (www / "blob.bin").write_bytes(blob)  # 50 KiB that do not compress
    (www / "large.txt").write_text(
        "".join(f"line {i} of a larger text file\n" for i in range(20_000))
    )
    (www / "static").mkdir()
    text = NOTES
    (www / "static" / "notes.txt").write_bytes(text)
    half = len(text) // 2  # two gzip members, as `cat a.gz b.gz` makes
    (www / "static" / "notes.txt.gz").write_bytes(
        gzip.compress(text[:half]) + gzip.compress(text[half:])
    )
    (www / "empty.txt").write_text("")
    for tmp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / tmp).mkdir()
    many = "\n".join(f"    add_header X-Many-{i} {'v' * 180};" for i in range(60))
    config = base / "nginx.conf"
    config.write_text(f"""
worker_processes 1;
pid {base}/nginx.pid;
error_log stderr error;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {base}/body; proxy_temp_path {base}/proxy; fastcgi_temp_path {base}/fastcgi;
  uwsgi_temp_path {base}/uwsgi; scgi_temp_path {base}/scgi;
  types {{ text/html html; application/json json; text/plain txt; application/octet-stream bin; }}
  default_type application/octet-stream;
  large_client_header_buffers 4 16k;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    gzip on; gzip_types text/plain application/json; gzip_min_length 20;
    location /static/ {{ gzip_static on; gzip off; }}
    location = /r301 {{ return 301 /index.html; }}
    location = /r302 {{ return 302 /page.html; }}
    location = /r303 {{ return 303 /data.json; }}
    location = /r307 {{ return 307 /unicode.txt; }}
    location = /r308 {{ return 308 /blob.bin; }}
    location = /to-root {{ return 301 http://127.0.0.1:{port}; }}
    location = /chain/1 {{ return 302 /chain/2; }}
    location = /chain/2 {{ return 301 ../r302; }}
    location = /nothing {{ return 204; }}
    location = /teapot {{ return 418 "short and stout\\n"; }}
    location = /broken {{ return 500 "broken\\n"; }}
    location = /headers {{
{many}
      return 200 "many headers\\n";
    }}
    location = /huge-header {{
      add_header X-Huge {"h" * 3000};
{chr(10).join(f"      add_header X-Huge-{i} {'h' * 3000};" for i in range(24))}
      return 200 "a head over 64 KiB\\n";
    }}
    location /proxied/ {{
      proxy_pass {upstream}/;
      proxy_http_version 1.1;
      proxy_buffering off;
    }}
  }}
}}
""")
    return config


@contextlib.contextmanager
def nginx_running(upstream: str) -> Iterator[str]:
    binary = need("nginx")
    base = Path(tempfile.mkdtemp(prefix="monitor-diff-nginx-"))
    base.chmod(0o755)  # nginx's workers run as an unprivileged user and read www/ here
    port = free_port()
    config = nginx_site(base, port, upstream)
    proc = subprocess.Popen(
        [binary, "-p", str(base), "-c", str(config), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
                pytest.fail(f"nginx did not start: {err}")
            time.sleep(0.02)  # noqa: TID251  polling a child process, with a deadline
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(base, ignore_errors=True)


# --- the two clients ---------------------------------------------------------------------


async def by_monitor(url: str) -> Seen:
    prober = Prober(
        URL(url),
        headers=dict(HEADERS),
        user_agent="unused",
        tls=ssl.create_default_context(),
        max_redirects=MAX_REDIRECTS,
        max_body=MAX_BODY,
    )
    try:
        async with asyncio.timeout(10):
            r = await prober.fetch(PhaseTimer())
    except ProbeError as exc:
        return Seen(None, "", 0, "", exc.failure.value)
    return Seen(r.status, r.url, len(r.chain), hashlib.sha256(r.body).hexdigest())


async def by_curl(url: str, *extra: str) -> Seen:
    argv = [need("curl"), "--http1.1", "-L", "--compressed", "-s", "--max-time", "10",
            "--max-redirs", str(MAX_REDIRECTS), "-o", "-",
            "-w", "\n%{http_code} %{num_redirects} %{url_effective}",
            *(x for name, value in HEADERS.items() for x in ("-H", f"{name}: {value}")),
            *extra, url]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    body, _, written = out.rpartition(b"\n")
    code, redirects, final = written.decode().split(" ", 2)
    if proc.returncode != 0:
        return Seen(None, "", 0, "", f"curl exit {proc.returncode}")
    return Seen(int(code), final, int(redirects), hashlib.sha256(body).hexdigest())


# --- the endpoints -----------------------------------------------------------------------

HTTPBIN = [
    "/get", "/get?q=wing&n=1", "/status/200", "/status/201", "/status/204", "/status/404",
    "/status/418", "/status/500", "/html", "/json", "/xml", "/robots.txt", "/encoding/utf8",
    "/gzip", "/deflate", "/brotli", "/headers", "/user-agent", "/anything/wing?x=1",
    "/base64/V2luZywgY2xvdWQtb3JpZW50ZWQ=", "/bytes/2048?seed=3", "/stream-bytes/4096?seed=5",
    "/stream/4", "/range/1000", "/links/4/1", "/image/png", "/etag/wing", "/cache",
    "/response-headers?X-Note=wing", "/redirect/1", "/redirect/3", "/relative-redirect/4",
    "/absolute-redirect/2", "/redirect/9", "/redirect-to?url=/get",
    "/redirect-to?url=/html&status_code=301", "/redirect-to?url=/json&status_code=302",
    "/redirect-to?url=/xml&status_code=303", "/redirect-to?url=/robots.txt&status_code=307",
    "/redirect-to?url=/deny&status_code=308", "/status/302",
]  # fmt: skip
NGINX = [
    "/", "/index.html", "/page.html", "/data.json", "/unicode.txt", "/blob.bin", "/large.txt",
    "/empty.txt", "/missing", "/r301", "/r302", "/r303", "/r307", "/r308",
    "/to-root", "/chain/1", "/nothing", "/teapot", "/broken", "/headers", "/proxied/get",
    "/proxied/stream/5", "/proxied/gzip", "/proxied/html", "/proxied/redirect/2",
]  # fmt: skip
EXCEPTIONS = {
    # endpoint: (what the monitor sees, what curl sees), by the rule in the docstring
    "httpbin:/redirect/10": "max_redirects",
    "httpbin:/redirect-to?url=/get&status_code=300": "300 with Location",
    "nginx:/huge-header": "head limit",
    "nginx:/static/notes.txt": "gzip members",
}
NOTES = "".join(f"static line {i}\n" for i in range(3000)).encode()


@pytest.fixture(scope="module")
def nginx(httpbin: Any) -> Iterator[str]:
    with nginx_running(httpbin.url) as url:
        yield url


def comparable(seen: Seen, origins: dict[str, str]) -> Seen:
    """The final URL with each server's origin named, so both clients' URLs compare."""
    url = seen.url
    for name, origin in origins.items():
        url = url.replace(origin, f"{name}:")
    return Seen(seen.status, url, seen.redirects, seen.digest, seen.failure)


async def test_the_monitor_agrees_with_curl(httpbin: Any, nginx: str) -> None:
    need("curl")
    origins = {"httpbin": httpbin.url, "nginx": nginx}
    targets = [("httpbin", p) for p in HTTPBIN] + [("nginx", p) for p in NGINX]
    assert len(targets) >= 40
    limit = asyncio.Semaphore(4)

    async def both(server: str, path: str) -> tuple[str, Seen, Seen]:
        async with limit:
            url = origins[server] + path
            mine, theirs = await by_monitor(url), await by_curl(url)
            return f"{server}:{path}", comparable(mine, origins), comparable(theirs, origins)

    results = await asyncio.gather(*(both(s, p) for s, p in targets))
    differ = [(name, mine, theirs) for name, mine, theirs in results if mine != theirs]
    assert not differ, "\n".join(f"{n}\n  monitor {m}\n  curl    {t}" for n, m, t in differ)
    failed = [name for name, mine, _ in results if mine.failure or mine.status is None]
    assert not failed


async def test_the_documented_exceptions(httpbin: Any, nginx: str) -> None:
    need("curl")
    origins = {"httpbin": httpbin.url, "nginx": nginx}
    seen = {}
    for name in EXCEPTIONS:
        server, path = name.split(":", 1)
        url = origins[server] + path
        seen[name] = (await by_monitor(url), await by_curl(url))

    # max_redirects: 10 hops reach the limit of 10 for the monitor; curl follows all 10
    mine, theirs = seen["httpbin:/redirect/10"]
    assert mine.failure == FailureKind.REDIRECTS.value
    assert (theirs.status, theirs.redirects) == (200, 10)
    # 300 with Location: the monitor reports it, curl follows it
    mine, theirs = seen["httpbin:/redirect-to?url=/get&status_code=300"]
    assert (mine.status, mine.redirects) == (300, 0)
    assert (theirs.status, theirs.redirects) == (200, 1)
    # a head over 64 KiB: the monitor refuses it, curl (up to 100 KiB) reads it
    mine, theirs = seen["nginx:/huge-header"]
    assert mine.failure == FailureKind.PROTOCOL.value
    assert theirs.status == 200
    # gzip members: the monitor has the whole file; curl fails (or, if fixed, agrees)
    mine, theirs = seen["nginx:/static/notes.txt"]
    assert (mine.status, mine.digest) == (200, hashlib.sha256(NOTES).hexdigest())
    assert theirs.failure is not None or theirs == mine
