"""The probe client's response reading alone: one nginx-like response of a 2 KB page fed
to `monitor.checks.http.probe._Exchange` in one piece, in process, no socket.

    PYTHONPATH=CHECKOUT python3 bench/exchange.py

Prints the best of five runs of 20,000 responses, in microseconds per response; run it
with `PYTHONPATH` at two checkouts to compare their parsers.
"""

from __future__ import annotations

import asyncio
import time

from monitor.checks.http.httpclient import PhaseTimer
from monitor.checks.http.probe import _Exchange

PAGE = b"x" * 2055
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 06:00:00 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 2055\r\n"
    b"Last-Modified: Sat, 28 Nov 2026 05:00:00 GMT\r\nConnection: close\r\n"
    b'ETag: "6568a1b0-807"\r\nAccept-Ranges: bytes\r\n\r\n'
) + PAGE


async def main(n: int = 20_000) -> None:
    loop = asyncio.get_running_loop()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            exchange = _Exchange(loop, b"", False, True, 1 << 20, PhaseTimer(), "h")
            exchange.data_received(RESPONSE)
            exchange.done.result()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    print(f"{best:.2f} µs per response")


if __name__ == "__main__":
    asyncio.run(main())
