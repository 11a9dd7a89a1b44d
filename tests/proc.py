"""Runs the real `monitor` process and waits on what it prints, with deadlines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Daemon", "run_cli", "wait_for"]


async def wait_for(condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    """Polls `condition` until it returns something truthy, or fails after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Daemon:
    """`monitor run` as a child process; its JSON log lines are collected as they come."""

    def __init__(self, config: Path, *, nofile: int | None = None) -> None:
        self.config = config
        self.nofile = nofile  # RLIMIT_NOFILE (soft and hard) of the child
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []  # anything printed that is not a JSON log line
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> Daemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-W", "always::ResourceWarning", "-m", "monitor",
            "run", "-c", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=self._limits if self.nofile is not None else None,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout)),
            asyncio.create_task(self._read(self.proc.stderr)),
        ]
        started = await self.event("monitor_started")
        self.port = int(started["listen"].rsplit(":", 1)[1])
        return self

    def _limits(self) -> None:
        import resource

        limit = self.nofile or 1024
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode().rstrip("\n")
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.other.append(line)

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]  # fmt: skip

    async def event(self, event: str, *, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        found = await wait_for(lambda: self.find(event, **fields), timeout=timeout, what=event)
        return found[0]  # type: ignore[no-any-return]

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
