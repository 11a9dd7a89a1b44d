"""Wires the daemon together and owns its lifecycle: one TaskGroup, signals, reload.

SIGTERM/SIGINT: stop taking work, let runs in flight finish within
`daemon.shutdown_grace`, cancel the rest, exit. SIGHUP: reload the config file; an
invalid one is logged and the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.checks import CHECKS, CheckContext
from monitor.checks.http.httpclient import make_session
from monitor.config.loader import MonitorConfig, load_config
from monitor.core.clock import Clock, SystemClock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import ConfigError
from monitor.core.model import CheckResult, Incident
from monitor.core.redact import remember_config
from monitor.core.resources import probe_reserve, raise_nofile_limit
from monitor.engine.confirm import Confirmer, definition_hash, probe_once
from monitor.engine.fleet import Fleet, config_hash, owner
from monitor.engine.fleetview import FleetView
from monitor.engine.history import CheckReadings, HistoryView, HistoryWriter
from monitor.engine.limits import Limiter
from monitor.engine.membership import Membership, this_replica
from monitor.engine.pipeline import ResultHandler
from monitor.engine.scheduler import CheckRunner, ResultSink, Scheduler
from monitor.engine.slo import SloEvaluator, objectives
from monitor.engine.summary import Summaries
from monitor.incidents.manager import IncidentManager
from monitor.incidents.silences import SilenceBook
from monitor.metrics.exporter import Metrics
from monitor.notifiers.base import NotifierConfigBase
from monitor.notifiers.console import ConsoleConfig
from monitor.paging.delivery import Delivery
from monitor.paging.heartbeat import Heartbeat, assess
from monitor.paging.leader import FleetClock, Leadership
from monitor.paging.outbox import Outbox
from monitor.paging.pager import Pager
from monitor.store import Store, StoreError, store_for
from monitor.store.confirmations import ConfirmationBook
from monitor.store.readings import SharedReadings
from monitor.store.replicas import ReplicaBook, RunBook
from monitor.web.api import ApiServer, IncidentApi, build_app
from monitor.web.badges import BadgeApi
from monitor.web.common import already_current
from monitor.web.history import HistoryApi
from monitor.web.slo import slo_fragment, slo_json
from monitor.web.status import StatusView

__all__ = ["App"]

log = structlog.stdlib.get_logger(__name__)

STORE_RETRY_S = 2.0  # how often the outbox and the pager retry a store that failed


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it: the documented way to stop a group."""


class App:
    """The running daemon. `run()` returns after a stop request, once shut down."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        config_path: str | None = None,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        env: Mapping[str, str] | None = None,
        install_signals: bool = True,
        store: Store | None = None,
    ) -> None:
        self.config = config
        remember_config(config)  # its secrets are masked on every surface (monitor.core.redact)
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.env = os.environ if env is None else env
        self.store: Store = store or store_for(
            config.daemon.store_dsn, config.daemon.resolved_state_dir(self.env)
        )
        self.incidents = IncidentManager(
            self.store, self.clock, self.metrics, cooldown=config.incidents.cooldown
        )
        self.silences = SilenceBook(self.store, self.clock)
        self.results = ResultHandler(
            self.metrics, clock=self.clock, store=self.store, incidents=self.incidents,
            silences=self.silences,
        )  # fmt: skip
        self.results.configure(config.severity, config.maintenance)
        self.slo = SloEvaluator(
            self.store, self.clock, self.metrics.slo, self.results.rollups,
            incidents=self.incidents, silences=self.silences,
        )  # fmt: skip
        self.slo.configure(objectives(config.checks, config.groups), config.severity,
                           config.maintenance)  # fmt: skip
        self.install_signals = install_signals
        self.scheduler: Scheduler | None = None
        self.api_port: int | None = None
        self._listen = config.daemon.listen  # what the server is bound to; fixed until restart
        self._limiter: Limiter | None = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._ready = False
        self.membership: Membership | None = None
        self.fleet: Fleet | None = None
        self.leadership: Leadership | None = None  # who pages, on a shared store
        self.confirmer: Confirmer | None = None
        self.view: FleetView | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    async def run(self) -> None:
        # No collections while thousands of checks are built: each full pass over a heap
        # that size holds the loop for 100-300 ms. Once everything long-lived exists it
        # is frozen out of the collector (see `_settle_heap`).
        collecting = gc.isenabled()
        gc.disable()
        try:
            await self._run()
        finally:
            if collecting:
                gc.enable()

    async def _run(self) -> None:
        config = self.config
        limits = raise_nofile_limit()
        if limits is not None:
            log.info("open_files_limit", soft=limits[0], hard=limits[1])
        self._mark_loaded(config)
        self._limiter = Limiter(config.limits)
        async with contextlib.AsyncExitStack() as stack:
            # Everything durable is read back before the first probe or API call.
            await self.store.open()
            stack.push_async_callback(self.store.close)
            if isinstance(self.store, ReplicaBook):  # a shared database: one of a fleet
                self.membership, self.fleet = self._join(config)
                await self.membership.beat()
                stack.push_async_callback(
                    self.membership.leave if self.fleet is None else self.fleet.leave
                )
                # Paging reads the database's time: escalations move between replicas.
                self.leadership = Leadership(
                    self.store, self.clock, self.metrics, self.membership.me.id,
                    fleet_clock=FleetClock(self.clock),
                )  # fmt: skip
                stack.push_async_callback(self.leadership.release)
            readings: CheckReadings = self.results
            refresh: Callable[[], Awaitable[None]] = already_current
            if self.fleet is not None and isinstance(self.store, SharedReadings):
                self.view = self._view(self.store, self.fleet)
                readings, refresh = self.view.readings, self.view.current
            await self.results.load(config.checks)
            await self.incidents.load()
            await self.silences.load()
            history = HistoryWriter(self.results.rollups, self.store, self.clock)
            history.stored.append(self.slo.stored)  # SLOs count what is stored, once a minute
            history.after_flush.append(self.slo.evaluate)
            ctx = await stack.enter_async_context(probe_context(config, self.clock, self.metrics))
            session = ctx.session
            if isinstance(self.store, ConfirmationBook) and self.membership is not None:
                self.confirmer = self._confirmer(self.store, self.membership, session)
            incident_api = IncidentApi(
                self.incidents, self.silences, self.clock, config.api.write_token,
                runbook_of=self._runbook_of,
            )  # fmt: skip
            summaries = Summaries(
                self.store, self.clock, lambda: [c.name for c in self.config.enabled_checks]
            )
            status = StatusView(
                title=config.daemon.status_title, clock=self.clock,
                checks=lambda: self.config.enabled_checks, results=readings,
                incidents=self.incidents, runbook_of=self._runbook_of,
                summaries=summaries, groups=lambda: self.config.groups,
                slo_section=lambda name: slo_fragment(self.slo, name) or None, refresh=refresh,
            )  # fmt: skip
            history_api = HistoryApi(
                HistoryView(self.store, self.clock),
                lambda n: self.config.check(n) is not None,
                slo=slo_json(self.slo),
            )
            badges = BadgeApi(lambda: self.config.enabled_checks, readings, self.store,
                              self.clock, refresh)  # fmt: skip
            app = build_app(
                self.metrics, lambda: self._ready, incident_api, status,
                fleet=self._fleet_detail, history=history_api, badges=badges,
            )  # fmt: skip
            self.outbox, self.pager = self._paging(config, session)
            await self.pager.load()
            # The API never takes the descriptors the probes need.
            reserve = probe_reserve(config.limits.max_concurrency)
            api = ApiServer(app, config.daemon.host, config.daemon.port, reserve=reserve)
            await api.start()
            stack.push_async_callback(api.stop)
            self.api_port = api.port
            if self.install_signals:
                self._install_signals(stack)
            if self.fleet is not None:  # which checks are this replica's, before any runs
                await self.fleet.step(self.clock.monotonic())
            log.info(
                "monitor_started",
                version=__version__,
                checks=len(config.enabled_checks),
                listen=f"{config.daemon.host}:{api.port}",
                config=config.source,
                event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    fleet = self.fleet
                    self.scheduler = Scheduler(
                        tg, ctx, self._limiter, self.metrics,
                        self._sink(),
                        None if fleet is None else fleet.owns,
                    )  # fmt: skip
                    self.scheduler.start(config.enabled_checks)
                    tg.create_task(self._reload_loop(), name="reloader")
                    tg.create_task(history.run(), name="history")
                    tg.create_task(summaries.run(), name="summaries")
                    tg.create_task(self._resilient("outbox", self.outbox.run), name="outbox")
                    tg.create_task(
                        self._resilient("pager", self.pager.run, self.pager.load), name="pager"
                    )
                    heartbeat = Heartbeat(
                        lambda: self.config.heartbeat, session, self.clock, self.metrics,
                        self._health,
                    )  # fmt: skip
                    beating = tg.create_task(heartbeat.run(), name="heartbeat")
                    if fleet is not None:
                        fleet.attach(self.scheduler)
                        tg.create_task(fleet.run(), name="fleet")
                    elif self.membership is not None:
                        tg.create_task(self.membership.run(), name="membership")
                    if self.leadership is not None:
                        tg.create_task(self.leadership.run(), name="leadership")
                    if self.confirmer is not None:
                        tg.create_task(self.confirmer.run(), name="confirmations")
                    if self.view is not None:
                        tg.create_task(self.view.run(), name="fleet-view")
                    self._ready = True
                    _settle_heap()
                    await self._stop.wait()
                    beating.cancel()  # a planned stop sends no /fail ping
                    self._ready = False
                    grace = self.config.daemon.shutdown_grace.total_seconds()
                    cancelled = await self.scheduler.stop(grace)
                    await history.flush(everything=True)
                    log.info("monitor_stopped", cancelled_runs=cancelled)
                    raise _Shutdown
            except* _Shutdown:
                pass

    async def _resilient(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        reload: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Runs the outbox or the pager; a store that fails (a database that is down, a
        full disk) stops it for a moment, never the daemon. It starts again from what the
        store holds (`reload`), retried every `STORE_RETRY_S` until the store answers."""
        failed: BaseException | None = None
        while True:
            try:
                if failed is not None and reload is not None:
                    await reload()
                await run()
                return
            except* StoreError as group:
                failed = group.exceptions[0]
            log.warning("store_unavailable", component=name, error=str(failed),
                        retry_in_s=STORE_RETRY_S)  # fmt: skip
            await self.clock.sleep_until(self.clock.monotonic() + STORE_RETRY_S)

    def _confirmer(
        self, book: ConfirmationBook, membership: Membership, session: aiohttp.ClientSession
    ) -> Confirmer:
        """Confirmation from another replica (`confirm:`): asks for the pipeline, answers
        the others with this replica's own definition of the check."""
        me = membership.me

        def peers() -> int:
            return sum(r.id != me.id for r in membership.live)

        async def probe(name: str, definition: str) -> tuple[CheckConfigBase, CheckResult] | None:
            config = self.config.check(name)
            if config is None or not config.enabled or definition_hash(config) != definition:
                return None
            assert self._limiter is not None  # noqa: S101  set before the store opens
            return config, await probe_once(config, session, self.clock, self._limiter)

        confirmer = Confirmer(book, me, peers, self.clock, probe)
        self.results.confirmer = confirmer
        return confirmer

    def _sink(self) -> ResultSink:
        """Where the scheduler delivers results: the pipeline; on a replica, noted first
        by the fleet (when each check ran) and then by its view (the readings to write)."""
        if self.fleet is None:
            return self.results
        return self.fleet.recording(self.results, None if self.view is None else self.view.ran)

    def _view(self, store: SharedReadings, fleet: Fleet) -> FleetView:
        """What every replica serves: the fleet's check readings, incidents and silences
        (`monitor.engine.fleetview`); incident changes start from the store's rows, SLOs
        count every replica's runs and one replica raises each burn incident."""
        me = fleet.membership.me.id
        self.incidents.shared = True
        self.slo.shared = True

        def leads(key: str) -> bool:
            return owner(key, [r.id for r in fleet.membership.live]) == me

        self.slo.leads = leads
        view = FleetView(
            store, me, self.clock, self.results, fleet.owns, lambda: self.config.enabled_checks,
            beat_s=fleet.beat_s, incidents=self.incidents, silences=self.silences,
        )  # fmt: skip
        # The readings ride on the fleet's beat: one statement a second for both.
        view.carried = True
        fleet.carried = view
        return view

    def _fleet_detail(self) -> dict[str, object] | None:
        lead = {} if self.leadership is None else self.leadership.detail()
        if self.fleet is not None:
            return self.fleet.detail() | lead
        return None if self.membership is None else self.membership.detail() | lead

    def _join(self, config: MonitorConfig) -> tuple[Membership, Fleet | None]:
        """Membership on a shared store, and check ownership where the store keeps runs."""
        assert isinstance(self.store, ReplicaBook)  # noqa: S101  the caller checked
        beat_s = config.daemon.replica_beat.total_seconds()
        ttl_s = config.daemon.replica_ttl.total_seconds()
        me = replace(this_replica(ttl_s), config_hash=config_hash(config))
        membership = Membership(self.store, me, self.clock, self.metrics, beat_s=beat_s)
        if not isinstance(self.store, RunBook):
            return membership, None
        fleet = Fleet(
            membership, self.store, self.clock, self.metrics,
            lambda: self.config.enabled_checks, ttl_s=ttl_s, adopt=self.results.adopt,
            incidents=self.incidents, drop=self.results.disown,
            held=self.results.unsettled.__contains__,
        )  # fmt: skip
        self.results.orphaned = fleet.orphaned
        return membership, fleet

    async def _health(self) -> list[str]:
        """What is wrong with the monitor now (`paging.heartbeat.assess`)."""
        return await assess(
            running=self._ready,
            store_answers=self.outbox.export_depth,
            outages=self.outbox.outages,
            timeout_s=self.config.heartbeat.timeout.total_seconds(),
        )

    def _paging(
        self, config: MonitorConfig, session: aiohttp.ClientSession
    ) -> tuple[Outbox, Pager]:
        """Notifiers (console when none is configured), the outbox and the pager."""
        configs: dict[str, NotifierConfigBase] = dict(config.notifiers) or {
            "console": ConsoleConfig(type="console")
        }
        lead = self.leadership
        clock = self.clock if lead is None or lead.fleet_clock is None else lead.fleet_clock
        delivery = Delivery(
            configs, session, self.store, clock, self.metrics, self.incidents, lead=lead,
        )  # fmt: skip
        pager = Pager(
            self.store, clock, self.incidents, delivery.outbox, config.escalation,
            config.oncall, delivery.types, self._runbook_of,
            drill_duration=config.incidents.drill_duration, lead=self.leadership,
        )  # fmt: skip
        return delivery.outbox, pager

    def _runbook_of(self, incident: Incident) -> str | None:
        """The runbook of an incident under the running config (it follows reloads)."""
        return self.config.runbook_for(incident.check, incident.rule)

    def _install_signals(self, stack: contextlib.AsyncExitStack) -> None:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
            stack.callback(loop.remove_signal_handler, sig)

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            with contextlib.suppress(Exception):  # reload() logs its own failures
                await self.reload()

    async def reload(self) -> bool:
        """Loads the config file again and applies it. Returns whether it was applied."""
        if self.config_path is None or self.scheduler is None or self._limiter is None:
            log.warning("config_reload_unavailable", reason="no config file or not running")
            return False
        try:
            # Off the event loop: probes and /healthz keep their pace while a large or
            # hostile file is read (parse_config bounds it to about a second).
            new = await asyncio.to_thread(load_config, self.config_path, self.env)
        except ConfigError as exc:
            self.metrics.reload_ok.set(0)
            errors = [str(i) for i in exc.issues[:RELOAD_ERRORS_LOGGED]]
            if len(exc.issues) > RELOAD_ERRORS_LOGGED:
                errors.append(f"… and {len(exc.issues) - RELOAD_ERRORS_LOGGED:,} more")
            log.error("config_reload_failed", errors=errors)
            return False
        except Exception as exc:  # noqa: BLE001 - a reload never stops the daemon
            self.metrics.reload_ok.set(0)
            log.error("config_reload_failed", errors=[f"{self.config_path}: {type(exc).__name__}"])
            return False
        remember_config(new)
        if new.daemon.listen != self._listen:
            log.warning("config_change_needs_restart", key="daemon.listen", kept=self._listen)
        for key, old_value, new_value in (
            ("daemon.state_dir", self.config.daemon.state_dir, new.daemon.state_dir),
            ("daemon.store", self.config.daemon.store_dsn, new.daemon.store_dsn),
            ("api.token", self.config.api.write_token, new.api.write_token),
        ):
            if old_value != new_value:
                log.warning("config_change_needs_restart", key=key)
        try:
            self.incidents.cooldown = new.incidents.cooldown
            self._limiter.reconfigure(new.limits)
            self.results.configure(new.severity, new.maintenance)
            self.slo.configure(objectives(new.checks, new.groups), new.severity, new.maintenance)
            summary = await self.scheduler.apply(new.enabled_checks)
            await self.results.forget(summary.removed)
        except Exception as exc:  # e.g. a check that cannot be built
            self.metrics.reload_ok.set(0)
            log.exception("config_reload_failed", errors=[f"could not apply: {type(exc).__name__}"])
            return False
        self.config = new
        if self.fleet is not None:
            self.fleet.reconfigured(new)
        self._mark_loaded(new)
        _settle_heap()
        log.info(
            "config_reloaded",
            added=summary.added,
            changed=summary.changed,
            removed=summary.removed,
            unchanged=summary.unchanged,
        )
        return True

    def _mark_loaded(self, config: MonitorConfig) -> None:
        self.metrics.series.keep_phases(config.daemon.phase_histograms)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_at.set(self.clock.now().timestamp())
        enabled = len(config.enabled_checks)
        self.metrics.count_checks(enabled, len(config.checks) - enabled)


RELOAD_ERRORS_LOGGED = 100  # a log line stays readable; `monitor validate` lists them all

FULL_COLLECTION_EVERY = 1000  # middle-generation collections per full one (CPython: 10)


def _settle_heap() -> None:
    """Moves every object alive now (config, checks, their tasks and series) out of the
    garbage collector's generations, then lets it run.

    They live as long as the config does; scanning them again and again is what made
    full collections hold the event loop for 100-300 ms with 10,000 checks (and late
    probes with it). Collections then only look at what runs create, and full ones come
    a hundred times less often (every 1,000 instead of 10 middle-generation passes):
    what runs create dies young or is freed by reference counting; a full pass over
    the results each check keeps is what delayed probes (bench/README.md).
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    gc.enable()


@contextlib.asynccontextmanager
async def probe_context(
    config: MonitorConfig, clock: Clock, metrics: Metrics
) -> AsyncIterator[CheckContext]:
    """What every check runs with, in the daemon and in `monitor check` alike: the shared
    HTTP session (the configured user agent), the clock and the metrics."""
    async with make_session(config.daemon.user_agent) as session:
        yield CheckContext(session=session, clock=clock, metrics=metrics)


async def run_checks_once(
    config: MonitorConfig, selected: Sequence[CheckConfigBase], *, clock: Clock | None = None
) -> list[CheckResult]:
    """Runs each selected check once, concurrently, as the daemon runs it: its HTTP
    session and user agent, its per-host limits, its retries (`monitor check`)."""
    clock = clock or SystemClock()
    metrics = Metrics(CollectorRegistry())
    limiter = Limiter(config.limits)

    async def ignore(_config: CheckConfigBase, _result: CheckResult) -> None:
        return None

    async with probe_context(config, clock, metrics) as ctx:
        runners = [
            CheckRunner(CHECKS[c.kind](c, ctx), clock, limiter, metrics, ignore) for c in selected
        ]
        try:
            return list(await asyncio.gather(*(r.run_once() for r in runners)))
        finally:
            for runner in runners:
                runner.check.close()
