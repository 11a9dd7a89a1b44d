"""A real PostgreSQL server for tests, and a fresh schema per test.

`MONITOR_TEST_POSTGRES_DSN` names a server to use (`.ci/run` starts a private cluster and
sets it). Without it, `private_cluster()` starts one itself from Debian's binaries
(`/usr/lib/postgresql/<version>/bin`): its own data directory, port and socket directory,
stopped at the end. Neither available: the tests skip, except under `CI=true`, where they
fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

__all__ = ["Cluster", "TcpProxy", "find_bin", "private_cluster", "schema_dsn", "server_dsn"]

ENV = "MONITOR_TEST_POSTGRES_DSN"


def find_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl."""
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A private cluster: `start()` runs initdb and pg_ctl as a non-root user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "log"
        self.port = _free_port()
        self.password = secrets.token_hex(12)
        self._user: str | None = None

    def _as_owner(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else list(argv)

    def start(self) -> str:
        if os.geteuid() == 0:  # initdb refuses to run as root
            self._user = "postgres"
            owner = pwd.getpwnam(self._user)
            self.sockets.mkdir()
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        else:
            self.sockets.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._user:
            owner = pwd.getpwnam(self._user)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            self._as_owner(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "monitor",
                           "--pwfile", str(pwfile), "-A", "scram-sha-256", "--no-sync",
                           "-E", "UTF8", "--locale", "C"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        self.resume()
        return f"postgresql://monitor:{self.password}@127.0.0.1:{self.port}/postgres"

    def resume(self) -> None:
        """Starts the server (again, after `pause`), on the same port."""
        self.pg_ctl("start", "-w", "-o",
                    f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-l", str(self.log))  # fmt: skip

    def pause(self) -> None:
        """Stops the server, its data kept: every connection is closed, new ones are
        refused until `resume`."""
        self.pg_ctl("stop", "-m", "fast", "-w")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin with initdb and pg_ctl")
    cluster = Cluster(bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@contextlib.contextmanager
def server_dsn() -> Iterator[str]:
    """The DSN of a server for this test session (see the module's docstring)."""
    dsn = os.environ.get(ENV)
    if dsn:
        yield dsn
        return
    try:
        with private_cluster() as started:
            yield started
    except (FileNotFoundError, KeyError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL ({ENV} unset, no private cluster: {exc})")


@contextlib.contextmanager
def schema_dsn(dsn: str) -> Iterator[str]:
    """A fresh schema on the server, and a DSN whose search_path puts everything in it."""
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"'.encode())
    sep = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        drop_schema(dsn, name)


def drop_schema(dsn: str, name: str, tries: int = 5) -> None:
    """Drops the schema and all in it. The backends of a daemon just killed may still be
    finishing a statement on its tables, and the drop can deadlock with one of them (the
    server then ends one of the two): tried again, waiting for the other's locks."""
    for attempt in range(tries):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE'.encode())
            return
        except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
            if attempt == tries - 1:
                raise  # else the other went on: the next try waits for its locks


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; `sever()` cuts every connection and
    refuses new ones until `restore()`: the database gone, as the daemon sees it.
    `stall()` drops every byte both ways and leaves connections open: a network
    partition, which neither end is told of (the server keeps its side alive)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.open = True
        self.stalled = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        if self.stalled:  # a connect into the partition: never answered
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while await reader.read(65536):
                    pass
            writer.close()
            return
        # Cut by `sever()` even while the database is being reached: a connection that
        # was being made as the proxy was severed must not come through it afterwards.
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        if self._severed(writer):  # meanwhile
            self._writers.discard(writer)
            up_writer.close()
            writer.close()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if self.stalled:
                        continue  # lost in the partition
                    dst.write(data)
                    await dst.drain()
            if not self.stalled:  # a close is lost in the partition too
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
        writer.close()
        up_writer.close()

    def _severed(self, writer: asyncio.StreamWriter) -> bool:
        return not self.open or writer.is_closing()

    def sever(self) -> None:
        self.open = False
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        self.stalled = True

    def restore(self) -> None:
        self.open = True
        self.stalled = False

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
