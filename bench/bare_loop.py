"""The floor: a bare GET loop at a fixed rate, a fresh connection per request.

By default each GET goes through aiohttp, as the daemon's do, with nothing around it.
With `--raw` there is no HTTP client library at all: an asyncio protocol writes the
request and reads the response to the end of the connection, and only the status code
is parsed; it shows what the event loop and the kernel cost on their own.

Prints one JSON line: requests sent, answered 200, and this process's CPU seconds spent
in the loop (getrusage, interpreter start-up and imports excluded).

    python3 bench/bare_loop.py URL --rate 200 --seconds 20 [--uvloop] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from collections.abc import Awaitable, Callable
from typing import cast


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _RawGet(asyncio.Protocol):
    """One GET on its own connection; the future gets the status code at EOF."""

    def __init__(self, request: bytes, done: asyncio.Future[int]) -> None:
        self.request, self.done, self.head = request, done, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if len(self.head) < 12:  # only the status line's b"HTTP/1.1 200" is kept
            self.head += data[:12]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self.done.set_exception(exc)
            return
        code = self.head[9:12]
        self.done.set_result(int(code) if code.isdigit() else 0)


async def _raw_main(url: str, rate: float, seconds: float) -> dict[str, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    ok = 0

    async def get() -> None:
        nonlocal ok
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        try:
            await loop.create_connection(lambda: _RawGet(request, done), host, port)
            ok += await done == 200
        except OSError:
            pass

    return await _drive(get, rate, seconds) | {"ok": ok}


async def _drive(
    get: Callable[[], Awaitable[None]], rate: float, seconds: float
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    cpu0 = _cpu()
    start = loop.time()
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(get())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return {"requests": total, "cpu_s": _cpu() - cpu0, "wall_s": loop.time() - start}


async def _main(url: str, rate: float, seconds: float) -> dict[str, float]:
    import aiohttp

    ok = 0
    # One session, no connection reuse: every GET opens and closes its own connection,
    # as a probe must (blackbox_exporter does the same).
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get() -> None:
            nonlocal ok
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    ok += resp.status == 200
            except (aiohttp.ClientError, OSError):
                pass

        result = await _drive(get, rate, seconds)
    return result | {"ok": ok}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--raw", action="store_true", help="no HTTP client library")
    args = parser.parse_args()
    main_ = _raw_main if args.raw else _main
    if args.uvloop:
        import uvloop

        result = uvloop.run(main_(args.url, args.rate, args.seconds))
    else:
        result = asyncio.run(main_(args.url, args.rate, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
