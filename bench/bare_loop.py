"""The floor: a bare aiohttp GET loop at a fixed rate, a fresh connection per request.

Prints one JSON line: requests sent, answered 200, and this process's CPU seconds spent
in the loop (getrusage, interpreter start-up and imports excluded).

    python3 bench/bare_loop.py URL --rate 200 --seconds 20 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
        cpu = _cpu() - cpu0
    return {"requests": total, "ok": ok, "cpu_s": cpu, "wall_s": loop.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        result = uvloop.run(_main(args.url, args.rate, args.seconds))
    else:
        result = asyncio.run(_main(args.url, args.rate, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
