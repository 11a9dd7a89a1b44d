from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from monitor.checks.http.httpclient import make_session
from monitor.metrics.exporter import Metrics
from tests.fakes import FakeClock


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
