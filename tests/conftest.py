from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from monitor.checks.http.httpclient import make_session
from monitor.metrics.exporter import Metrics
from tests.fakes import FakeClock
from tests.postgres import schema_dsn, server_dsn


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The monitor's own shared client session, as checks get it."""
    async with make_session() as s:
        yield s


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session (`tests/postgres.py`: skipped when there is
    none, failed under CI=true)."""
    with server_dsn() as dsn:
        yield dsn


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A DSN whose every table lands in a schema of its own, dropped afterwards."""
    with schema_dsn(pg_server) as dsn:
        yield dsn
