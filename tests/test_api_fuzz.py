"""Schemathesis fuzzes the API from its OpenAPI document, on a real local server with a
SQLite store: no request, valid or not, authorised or not, gets a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from monitor.checks.http.check import HttpCheckConfig
from monitor.core.clock import SystemClock
from monitor.core.configtypes import Defaults
from monitor.engine.history import HistoryView
from monitor.engine.pipeline import ResultHandler
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.store.sqlite import SqliteStore
from monitor.web.api import ApiServer, IncidentApi, build_app
from monitor.web.apischema import openapi_document
from monitor.web.badges import BadgeApi
from monitor.web.history import HistoryApi
from monitor.web.status import StatusView

TOKEN = "fuzz-token"
# Per operation. bench/README.md records a 10,000-request run: API_FUZZ_EXAMPLES=500, with
# API_FUZZ_REPORT=<file> receiving the count of answers per status.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "40"))
STATUSES: Counter[int] = Counter()

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
)


def serve(state: Path, ready: threading.Event, port: list[int], stop: list[asyncio.Event]) -> None:
    async def main() -> None:
        clock = SystemClock()
        store = SqliteStore(state / "monitor.sqlite3")
        await store.open()
        metrics = Metrics(CollectorRegistry())
        manager = IncidentManager(store, clock, metrics, cooldown=timedelta(0))
        await manager.load()
        book = SilenceBook(store, clock)
        await book.load()
        await manager.report("seeded", "fuzz")
        results = ResultHandler(metrics, clock=clock, store=store, incidents=manager)
        view = StatusView("fuzz", clock, list, results, manager)
        history = HistoryApi(HistoryView(store, clock), lambda name: name == "site")
        site = HttpCheckConfig(name="site", kind="http", url="https://site.test/", group="web")
        badges = BadgeApi(lambda: [site.resolved(Defaults())], results, store, clock)
        app = build_app(
            metrics, lambda: True, IncidentApi(manager, book, clock, TOKEN), view,
            history=history, badges=badges,
        )  # fmt: skip
        server = ApiServer(app, "127.0.0.1", 0)
        await server.start()
        port.append(server.port)
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await server.stop()
        await store.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ready, port, stop = threading.Event(), [], []  # type: ignore[var-annotated]
    thread = threading.Thread(
        target=serve, args=(tmp_path_factory.mktemp("state"), ready, port, stop), daemon=True
    )
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{port[0]}"
    loop_event = stop[0]
    loop_event._loop.call_soon_threadsafe(loop_event.set)
    thread.join(10)
    if report := os.environ.get("API_FUZZ_REPORT"):
        total, errors = sum(STATUSES.values()), sum(n for s, n in STATUSES.items() if s >= 500)
        Path(report).write_text(json.dumps(
            {"requests": total, "server_errors": errors, "statuses": dict(sorted(STATUSES.items()))}
        ) + "\n")  # fmt: skip


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES)
def test_no_request_gets_a_server_error(case: Any, base_url: str) -> None:
    headers = (
        {"Authorization": f"Bearer {TOKEN}"}
        if case.operation.method in ("post", "put", "delete")
        else {}
    )
    response = case.call(base_url=base_url, headers=headers, timeout=10)
    STATUSES[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error])
